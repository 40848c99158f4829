"""Registration (プロフィール登録): the application form, its review by the institution and the secretariat, later changes."""
