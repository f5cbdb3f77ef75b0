"""``casemail bench``: how fast and how lean casemail is, measured.

One module per measurement: ``intake`` (messages per second against the
listener's own ceiling and against a process per message), ``bigmail``
(peak memory for a 25 MB mail), ``outbound`` (notifications per second
to a relay) and ``sweep`` (one auto-close pass over many cases). The
servers under test run in processes of their own (``server``), driven by
our own SMTP client (``client``) with realistic mail (``mails``);
``report`` turns the results into the table kept in the README.
"""
