use super::*;

fn vars(args: &[(&str, &str)]) -> BTreeMap<String, String> {
    args.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn p(text: &str) -> Parsed {
    parse(
        text,
        &Vars {
            build_args: &BTreeMap::new(),
            platform: "linux/amd64",
        },
    )
}

#[test]
fn copy_and_add_sources_from_the_context_only() {
    let d = p(
        "# syntax=docker/dockerfile:1.7\nFROM rust:1 AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY crates/ crates/\n\
         COPY --chown=1:1 ./services/api /src/api\nRUN cargo build\n\
         FROM gcr.io/distroless/cc AS runtime\nCOPY --from=build /out/api /api\n\
         ADD https://example.invalid/x.tgz /x\nCOPY [\"conf/app.toml\", \"/etc/app.toml\"]\n\
         COPY <<EOF /x\nCOPY secret/ /nope\nEOF\nFROM build AS test\n",
    );
    assert_eq!(d.whole_context, None);
    assert_eq!(
        d.sources,
        [
            "Cargo.lock",
            "Cargo.toml",
            "conf/app.toml",
            "crates",
            "services/api"
        ]
    );
    let images: Vec<&str> = d.images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(images, ["rust:1", "gcr.io/distroless/cc"]);
}

#[test]
fn flags_before_a_json_array_and_continuations_with_comments() {
    let d = p(
        "FROM busybox\nCOPY --chown=1:1 --link [\"a b/x.txt\", \"c\", \"/dst/\"]\n\
         COPY one \\\n  # a comment inside\n\n  two /dst/\n",
    );
    assert_eq!(d.whole_context, None);
    assert_eq!(d.sources, ["a b/x.txt", "c", "one", "two"]);
}

#[test]
fn variables_resolve_from_arg_env_and_build_args_or_widen() {
    let args = vars(&[("APP", "api")]);
    let d = parse(
        "ARG BASE=busybox:1.35\nFROM ${BASE}\nARG TARGETARCH\nARG APP\nARG DIR=conf\n\
         ENV DATA=data/${APP}\nCOPY bin/${TARGETARCH}/${APP} ${DIR}/x.toml $DATA /dst/\n",
        &Vars {
            build_args: &args,
            platform: "linux/arm64",
        },
    );
    assert_eq!(d.whole_context, None, "{d:?}");
    assert_eq!(d.sources, ["bin/arm64/api", "conf/x.toml", "data/api"]);
    assert_eq!(d.images[0].reference, "busybox:1.35");
    let d = p("FROM busybox\nARG WHERE\nCOPY ${WHERE}/x /x\n");
    let why = d.whole_context.unwrap();
    assert!(why.contains("line 3") && why.contains("${WHERE}"), "{why}");
    let d = p("FROM busybox\nARG WHERE\nCOPY ${WHERE:-src}/x /x\n");
    assert_eq!(d.sources, ["src/x"]);
    let d = p("FROM busybox\nARG A\nARG B\nCOPY ${A:-${B:-other}}/x /x\n");
    assert_eq!(d.sources, ["other/x"], "nested defaults");
    let d = p("FROM busybox\nARG D=conf.d\nCOPY ${D%.d}/ /x\n");
    let why = d.whole_context.unwrap();
    assert!(why.contains("does not implement"), "{why}");
    let d = p("\u{feff}FROM busybox\nCOPY a /a\n");
    assert_eq!(
        d.whole_context, None,
        "a byte-order mark is not an instruction"
    );
}

#[test]
fn run_mounts_read_the_context_or_widen() {
    let d = p(
        "FROM rust:1 AS b\nRUN --mount=type=bind,source=crates,target=/c \\\n    \
         --mount=type=cache,target=/root/.cargo cargo build\n\
         RUN --mount=type=bind,from=b,source=/out,target=/o true\nRUN --network=none true\n",
    );
    assert_eq!(d.whole_context, None);
    assert_eq!(d.sources, ["crates"]);
    let d = p("FROM rust:1\nRUN --mount=type=bind,target=/src make\n");
    assert_eq!(
        d.sources,
        ["."],
        "a bind mount without source is the whole context"
    );
    let d = p("FROM rust:1\nRUN --mount=type=weird,target=/x true\n");
    assert!(d.whole_context.unwrap().contains("line 2"));
    let d = p("FROM rust:1\nRUN --frobnicate true\n");
    assert!(d.whole_context.unwrap().contains("--frobnicate"));
}

#[test]
fn copy_from_an_image_is_an_image_input_not_context() {
    let d = p(
        "FROM scratch\nCOPY --from=127.0.0.1:5000/slipway/base:1 /lib /lib\nCOPY --from=0 /x /x\n",
    );
    assert!(d.sources.is_empty());
    assert_eq!(d.images.len(), 1);
    assert_eq!(d.images[0].reference, "127.0.0.1:5000/slipway/base:1");
    assert_eq!(d.images[0].line, 2);
}

#[test]
fn directives_escape_and_unknown_frontends() {
    let d = p("# escape=`\nFROM busybox\nCOPY a `\n  b /dst/\n");
    assert_eq!(d.whole_context, None);
    assert_eq!(d.sources, ["a", "b"]);
    let d = p("# syntax=example.invalid/custom:1\nFROM busybox\nCOPY a /a\n");
    assert!(d.whole_context.unwrap().contains("line 1"));
    let d = p("# syntax=docker/dockerfile:1-labs\nFROM busybox\n");
    assert!(
        d.whole_context.is_some(),
        "labs features are not implemented"
    );
    let d = p("#   syntax = docker/dockerfile:1\nFROM busybox\nCOPY a /a\n");
    assert_eq!(d.whole_context, None);
}

#[test]
fn heredocs_are_skipped_and_unclosed_ones_widen() {
    let d = p("FROM busybox\nRUN <<-EOT sh\n\tCOPY nope /nope\n\tEOT\nCOPY yes /yes\n");
    assert_eq!(d.sources, ["yes"]);
    let d = p("FROM busybox\nRUN <<EOT\necho\n");
    assert!(d.whole_context.unwrap().contains("never closed"));
}

#[test]
fn unknown_flags_and_instructions_widen() {
    let d = p("FROM busybox\nCOPY --frob=1 a /a\n");
    assert!(d.whole_context.unwrap().contains("--frob"));
    let d = p("FROM busybox\nFETCH a /a\n");
    assert!(d.whole_context.unwrap().contains("FETCH"));
    let d = p("FROM busybox\nCOPY --parents src/**/x.rs /dst/\nCOPY ../outside /o\n");
    assert_eq!(d.sources, ["outside", "src/**/x.rs"]);
}

#[test]
fn stages_inherit_env_and_from_stage_is_not_an_image() {
    let d = p("FROM busybox AS base\nENV D=conf\nFROM base\nCOPY ${D}/a /a\n");
    assert_eq!(d.whole_context, None, "{d:?}");
    assert_eq!(d.sources, ["conf/a"]);
    assert_eq!(d.images.len(), 1);
}

#[test]
fn dockerignore_last_match_wins_and_covers_directories() {
    let ig = Ignore::parse("# docs\n*.md\n/target\ntests/\n!README.md\n**/*.tmp\n").unwrap();
    assert!(ig.excludes("CHANGELOG.md"));
    assert!(!ig.excludes("README.md"), "re-included");
    assert!(ig.excludes("target/debug/app"));
    assert!(ig.excludes("tests/it.rs"));
    assert!(ig.excludes("src/deep/x.tmp"));
    assert!(!ig.excludes("src/main.rs"));
    assert!(
        !ig.excludes("docs/guide.md"),
        "`*` does not cross `/`, as in Docker"
    );
    assert!(ig.has_exceptions());
    assert!(ig.may_match_below("src"), "**/*.tmp");
    let plain = Ignore::parse("target\n*.md\n").unwrap();
    assert!(!plain.may_match_below("src"));
    assert!(Ignore::parse("[")
        .unwrap_err()
        .to_string()
        .contains(".dockerignore line 1"));
}
