//! Dialplans: YAML files admins write (one per hotline), read with positions (`yaml`), into a
//! checked model (`load`, `check`, `model`, one file per node kind in `nodes/`), run per call by
//! the sans-IO engine (`engine`), with slot values read and read back by `values`.

pub mod check;
pub mod cli;
pub mod engine;
pub mod error;
pub mod history;
pub mod load;
pub mod model;
pub mod nodes;
pub mod phrases;
pub mod read;
pub mod registry;
pub mod sim;
pub mod testing;
pub mod training;
pub mod values;
pub mod yaml;

pub use error::DialplanError;
pub use load::{load_file, load_str};
pub use model::Dialplan;
