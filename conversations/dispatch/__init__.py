"""Dispatches (専門家派遣): the reviewer's request, the expert's answer, and check-in / check-out at the business."""
