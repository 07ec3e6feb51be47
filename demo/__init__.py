"""NurseryCry demo: broker, hub and edge in one process, on a live view."""
