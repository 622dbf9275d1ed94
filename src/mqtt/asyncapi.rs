//! Generated AsyncAPI document (filled in below).
