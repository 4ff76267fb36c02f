"""Backup IDs: the time they carry, and their order within one second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rapidly.backup.service import _new_id, created_of


def test_ids_made_within_one_second_sort_as_they_were_made():
    # given: one ID for every 7th millisecond of one second
    start = datetime(2026, 12, 7, 17, 44, 44, tzinfo=UTC)
    times = [start + timedelta(milliseconds=ms) for ms in range(0, 1000, 7)]

    # when
    ids = [_new_id(t) for t in times]

    # then
    assert sorted(ids) == ids
    assert {created_of(i) for i in ids} == {start}


def test_an_id_of_the_old_form_still_names_its_time():
    assert created_of("20261204T101825Z-3f9a1c") == datetime(2026, 12, 4, 10, 18, 25, tzinfo=UTC)
    assert created_of("20261204T101825Z-3f9a1") is None
