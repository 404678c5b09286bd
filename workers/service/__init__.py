"""The webhook starter service: signed refund requests in, workflows started, PSP events signalled."""
