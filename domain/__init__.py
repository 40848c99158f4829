"""The program's rules applied to stored records, with no conversation in them.

Status machines (the expert's lifecycle, dispatches, reports, change
requests), fees and 全銀 payments, generated documents, exports, counts, and
the Japanese text rules (normalisation, validators, bank lookups). The chat
flows (``conversations``) and the CLI (``handlers``) both use them; this
package never imports either: ``handlers -> conversations -> domain -> storage``.
"""
