//! Pipeline configuration: YAML with locations, `${VAR}` expansion, runner options, and typed
//! plugin options with errors that name `file:line:column` and the YAML path.

pub mod de;
pub mod duration;
pub mod env;
pub mod error;
pub mod format;
pub mod load;
pub mod node;
mod parse;
pub mod secret;
pub mod spec;

pub use de::{DeError, from_node};
pub use duration::HumanDuration;
pub use error::{ConfigError, ConfigErrors, SourceFile, did_you_mean};
pub use load::{
    load_path, load_path_partial, load_pipeline_body, load_str, load_str_partial, load_transforms,
    process_env,
};
pub use node::{Location, Node, NodeKind};
pub use secret::{Secret, SecretError};
pub use spec::{
    BatchOptions, ComponentSpec, ErrorBudget, OnError, PipelineSettings, PipelineSpec,
    RetryOptions, StageOptions,
};
