use super::*;

#[test]
fn lists_are_short() {
    assert_eq!(list(&["a"]), "a");
    assert_eq!(list(&["a", "b", "c", "d", "e"]), "a, b, c, and 2 more");
}

#[test]
fn build_manifest_sections_that_matter() {
    let base = "[workspace]\nmembers = [\"a\"]\n[profile.release]\nlto = false\n";
    let m = |t: &str| spec::build_manifest(Some(t));
    assert_eq!(
        m(base),
        m("[workspace]\nmembers = [\"a\", \"b\"]\n[profile.release]\nlto = false\n"),
        "members only"
    );
    assert_eq!(
        m(base),
        m("[workspace]\nmembers = [\"a\"]\n[workspace.metadata.images]\nprefix = \"x\"\n[profile.release]\nlto = false\n"),
        "image metadata is not a cargo input"
    );
    let new = m("[workspace]\nmembers = [\"a\"]\n[profile.release]\nlto = true\n");
    assert_eq!(
        spec::manifest_sections(&m(base), &new),
        ["[profile.release]"]
    );
}

#[test]
fn images_name_services() {
    let svc = |name: &str, repo: &str| Service {
        name: name.into(),
        repository: repo.into(),
        dir: format!("services/{name}").into(),
        dockerfile: format!("services/{name}/Dockerfile").into(),
        context: format!("services/{name}").into(),
        registries: vec!["127.0.0.1:5000".into()],
        platforms: vec!["linux/amd64".into()],
        tags: None,
        build_args: Default::default(),
        labels: Default::default(),
        policy: Default::default(),
        version: None,
        target: None,
        description: None,
        non_root: true,
        port: None,
        health_path: None,
        max_size: None,
        health_check: true,
        attestations: false,
        cargo: None,
        watch: vec![],
        depends_on: vec![],
    };
    let all = [svc("base", "slipway/base"), svc("api", "slipway/api")];
    let index = spec::ImageIndex::new(&all);
    let name = |r: &str| index.find(r).map(|s| s.name);
    assert_eq!(name("127.0.0.1:5000/slipway/base:1.2"), Some("base"));
    assert_eq!(name("slipway/base@sha256:abc"), Some("base"));
    assert_eq!(name("${REGISTRY}/slipway/base:${TAG}"), Some("base"));
    assert_eq!(name("busybox:1.35"), None);
    assert_eq!(name("example.invalid/other/slipway/basement"), None);
}
