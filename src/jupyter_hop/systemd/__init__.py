"""systemd user units: settings and their checks, the unit file, systemctl calls, and operations on units."""
