//! One module per subcommand; each takes the shared [`crate::Ctx`] and its own arguments.

pub mod bench;
pub mod build;
pub mod changed;
pub mod check;
pub mod completions;
pub mod doctor;
pub mod ecr;
pub mod lint;
pub mod list;
pub mod plan;
pub mod promote;
pub mod status;
pub mod version;
