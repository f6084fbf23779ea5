"""The access rules, in one place: each a pure function of plain facts (and the time)
returning a typed result, with no I/O, so each is a table-driven test.

- ``caller``: the credential and its holder (``decide_caller``, ``decide_staff_caller``)
- ``download``: the download decision (``decide``)
- ``eligibility``: windows, grant requests and issues, using a window
- ``approvals``: early access's four eyes, and the one reader of its setting
- ``visibility``: a release's export policy, in Python and in SQL for the selectors
- ``grant_token``: the signed token a download presents

``decide`` and the caller rules return a ``partners.decisions.Decision`` (a ``Reason``);
the others ``Success`` or ``Failure(code, message)`` (``result``). Views, actions, admin
and tasks call these; none of them re-states a rule. docs/architecture.md says how to add
one.
"""

from .approvals import (
    approvals_needed,
    approvals_needed_sql,
    direct_issue,
    early_access_approvals,
    early_access_approved,
    is_early_access,
    may_approve,
)
from .caller import CallerFacts, StaffCallerFacts, decide_caller, decide_staff_caller
from .download import DownloadFacts, decide, download_facts
from .eligibility import (
    MAX_QUOTA_BYTES,
    GrantEligibility,
    WindowChange,
    country_name,
    export_policy,
    grant_eligible,
    grant_terms,
    quota_valid,
    quota_within_limit,
    window_access,
    window_valid,
)
from .grant_token import GrantTokenFacts, grant_token_valid
from .result import SUCCESS, Failure, Result, Success
from .visibility import export_policy_q, jurisdiction_allowed

__all__ = [
    "MAX_QUOTA_BYTES",
    "SUCCESS",
    "CallerFacts",
    "DownloadFacts",
    "Failure",
    "GrantEligibility",
    "GrantTokenFacts",
    "Result",
    "StaffCallerFacts",
    "Success",
    "WindowChange",
    "approvals_needed",
    "approvals_needed_sql",
    "country_name",
    "decide",
    "decide_caller",
    "decide_staff_caller",
    "direct_issue",
    "download_facts",
    "early_access_approvals",
    "early_access_approved",
    "export_policy",
    "export_policy_q",
    "grant_eligible",
    "grant_terms",
    "grant_token_valid",
    "is_early_access",
    "jurisdiction_allowed",
    "may_approve",
    "quota_valid",
    "quota_within_limit",
    "window_access",
    "window_valid",
]
