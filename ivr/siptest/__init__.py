"""`ivr test --sip`: every flow test case as a real call (README: Testing over SIP)."""
