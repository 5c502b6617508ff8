//! Users: the mail port against a real SMTP server; the user aggregate,
//! `/v1/me`, contact-email verification and the operators' user list.

mod mail;
