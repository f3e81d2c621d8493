//! beacon-core: the contracts every Beacon component shares, with no I/O: regions,
//! ids, the job spec reader, signatures, statuses, the failure object, the router's
//! wire types and receipts. Components validate input once with these types and pass
//! the parsed values on (parse, don't re-validate).

pub mod canonical;
pub mod catalogue;
pub mod duration;
pub mod failure;
pub mod ids;
pub mod judge;
pub mod receipt;
pub mod region;
pub mod signing;
pub mod spec;
pub mod status;
pub mod transparency;
pub mod wire;

pub use catalogue::Catalogue;
pub use failure::{ErrorCode, Failure, Stage};
pub use ids::{JobId, ModelId, QuestionId};
pub use region::Region;
