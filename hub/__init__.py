"""NurseryCry hub."""
