"""Commission (委嘱): the conditions to consent to, the commission letter, and acceptance (就任承諾)."""
