"""Media: photos an end user adds to image fields, cleaned and kept in EU/EEA object storage."""
