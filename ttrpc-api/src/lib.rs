//! The ttrpc wire layer for the shim protocol (filled in by the shim issue).
