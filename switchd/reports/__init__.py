"""Historical reports (issue 18): figures per interval computed from stored CDRs and the queue_log."""
