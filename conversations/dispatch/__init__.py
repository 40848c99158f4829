"""Dispatches (専門家派遣): the reviewer's request, the expert's answer, and check-in / check-out at the business.

Two features for the router: requests (``feature``: ``request``, ``answers``,
``changes``, ``listing``, on ``businesses``, ``candidates``, ``schedule``,
``free_limit`` and ``common``) and attendance (``attendance``, on
``attendance_rules`` and ``readings``).
"""
