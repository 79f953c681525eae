"""Scheduling: the pool of open episodes, their decode units and the temporal windows anchors need."""
