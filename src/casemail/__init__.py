"""casemail: the email gateway for support cases.

A mail's path through the package, top to bottom:

    intake/    the SMTP/LMTP listener and the pipeline behind it
    classify/  who wrote it (a person, an auto-responder, a mailer daemon)
    mime/      what it says: new text, removed history, attachments
    cases/     which case it belongs to, and the one service that changes it
    outbound/  everything we send: outbox, templates, delivery
    db/        the tables and their migrations

Imports point down this list (and to the small shared modules: config,
clock, errors, addresses), never up.
"""

__version__ = "0.1.0"
