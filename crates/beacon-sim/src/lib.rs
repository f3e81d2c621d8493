//! beacon-sim: a stand-in for paid GPU inference endpoints (placeholder, being written).
