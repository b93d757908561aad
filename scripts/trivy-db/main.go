// Writes a tiny trivy vulnerability database (bbolt, schema version 2) for offline scans in
// Slipway's tests: advisories for fixture packages that no real image carries, so a scan
// finds exactly what a test planted. Usage: trivy-fixture-db CACHE_DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

type advisory struct {
	os, pkg, id, severity, fixed string
	level                        int
}

// Each advisory: the OS bucket ("alpine 3.22" is major.minor), the source package, the id,
// its severity and the version that fixes it ("" = not fixed yet).
var advisories = []advisory{
	{"alpine 3.22", "zz-vuln", "CVE-2099-0001", "CRITICAL", "1.0.1-r0", 4},
	{"alpine 3.22", "zz-high", "CVE-2099-0002", "HIGH", "2.0.1-r0", 3},
	{"alpine 3.22", "zz-unfixed", "CVE-2099-0003", "CRITICAL", "", 4},
}

// Advisories for language packages (a lockfile's entries, as `trivy fs` reads them): the
// bucket is "<ecosystem>::<data source>", the key the package name, the value the vulnerable
// and patched version ranges.
type langAdvisory struct {
	bucket, pkg, id, severity, vulnerable, patched string
}

var langAdvisories = []langAdvisory{
	// strsim is a crate Slipway itself locks, so a test workspace can lock it offline.
	{"cargo::Slipway fixture", "strsim", "CVE-2099-0101", "HIGH", "<99.0.0", "99.0.0"},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: trivy-fixture-db CACHE_DIR")
		os.Exit(2)
	}
	dir := filepath.Join(os.Args[1], "db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "trivy.db"), 0o644, nil)
	if err != nil {
		fail(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		vulns, err := tx.CreateBucketIfNotExists([]byte("vulnerability"))
		if err != nil {
			return err
		}
		for _, a := range advisories {
			osb, err := tx.CreateBucketIfNotExists([]byte(a.os))
			if err != nil {
				return err
			}
			pkg, err := osb.CreateBucketIfNotExists([]byte(a.pkg))
			if err != nil {
				return err
			}
			entry := map[string]any{"FixedVersion": a.fixed}
			if a.fixed == "" {
				entry = map[string]any{"Status": 2}
			}
			if err := put(pkg, a.id, entry); err != nil {
				return err
			}
			detail := map[string]any{
				"Title":          "fixture advisory for " + a.pkg,
				"Description":    "planted by Slipway's tests",
				"Severity":       a.severity,
				"VendorSeverity": map[string]int{"alpine": a.level},
			}
			if err := put(vulns, a.id, detail); err != nil {
				return err
			}
		}
		sources, err := tx.CreateBucketIfNotExists([]byte("data-source"))
		if err != nil {
			return err
		}
		for _, a := range langAdvisories {
			eco, err := tx.CreateBucketIfNotExists([]byte(a.bucket))
			if err != nil {
				return err
			}
			pkg, err := eco.CreateBucketIfNotExists([]byte(a.pkg))
			if err != nil {
				return err
			}
			entry := map[string]any{
				"VulnerableVersions": []string{a.vulnerable},
				"PatchedVersions":    []string{a.patched},
			}
			if err := put(pkg, a.id, entry); err != nil {
				return err
			}
			detail := map[string]any{
				"Title":       "fixture advisory for the " + a.pkg + " crate",
				"Description": "planted by Slipway's tests",
				"Severity":    a.severity,
			}
			if err := put(vulns, a.id, detail); err != nil {
				return err
			}
			source := map[string]any{"ID": "slipway", "Name": "Slipway fixture", "URL": "https://example.invalid/advisories"}
			if err := put(sources, a.bucket, source); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fail(err)
	}
	if err := db.Close(); err != nil {
		fail(err)
	}
	now := time.Now().UTC()
	meta := map[string]any{
		"Version":      2,
		"NextUpdate":   now.AddDate(100, 0, 0),
		"UpdatedAt":    now,
		"DownloadedAt": now,
	}
	text, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), text, 0o644); err != nil {
		fail(err)
	}
}

func put(b *bolt.Bucket, key string, value any) error {
	text, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), text)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "trivy-fixture-db:", err)
	os.Exit(1)
}
