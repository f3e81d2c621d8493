//! beacon-core: the contracts every Beacon component shares, with no I/O.

pub mod canonical;
pub mod catalogue;
pub mod duration;
pub mod ids;
pub mod region;
pub mod signing;
pub mod spec;

pub use catalogue::Catalogue;
pub use ids::{JobId, ModelId, QuestionId};
pub use region::Region;
