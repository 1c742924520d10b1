//! berthd, the berth daemon (later issues fill this in).
