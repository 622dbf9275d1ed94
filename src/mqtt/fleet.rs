//! The NOC side: fleet commands and views.
