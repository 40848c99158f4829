"""The expert's rights over their personal data, in LINE: disclosure (登録内容) and withdrawal (退会)."""
