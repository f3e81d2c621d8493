//! beacon-core: the contracts every Beacon component shares, with no I/O.

pub mod canonical;
pub mod region;
pub mod signing;

pub use region::Region;
