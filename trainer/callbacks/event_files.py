"""A run's TensorBoard event files, edited on resume: the events a killed run wrote after its
checkpoint are removed, so the resumed run writes each epoch once."""

from __future__ import annotations

from pathlib import Path


def drop_events_after(folder: Path, epoch: int, global_step: int) -> None:
    """Remove the events past a checkpoint from a run's event files: per-epoch values after
    `epoch`, per-step values (tags `*_step`) after `global_step`. TensorBoard's own purge takes
    one step for every tag, and this run's tags count in epochs or in steps."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from ..files import atomic_write

    for path in sorted(folder.glob("events.out.tfevents.*")):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = []
        for record in records:
            event = Event.FromString(record)
            tags = [value.tag for value in event.summary.value]
            per_step = any(tag.endswith("_step") or "_step/" in tag for tag in tags)
            if not tags or event.step <= (global_step if per_step else epoch):
                kept.append(record)
        if len(kept) < len(records):
            atomic_write(path, lambda handle, kept=kept: _write_records(RecordWriter(handle), kept))


def _write_records(writer, records: list[bytes]) -> None:
    for record in records:
        writer.write(record)
    writer.flush()
