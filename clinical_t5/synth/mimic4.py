"""Synthetic MIMIC-IV-Note discharge and radiology tables, streamed subject by subject.

`note_id` is `{subject_id}-{note_type}-{note_seq}` with note types DS and AD
(discharge, addendum) and RR and AR (radiology report, addendum). Every PHI
span is a run of three or more underscores. The annotation files list the
entity type of the i-th run of each note in its i-th row.

  discharge.csv.gz:
  note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text
  10000032-DS-21,10000032,22595853,DS,21,2180-05-07 00:00:00,2180-05-09 15:26:00," \\nName:  ___ ..."
  discharge_annotation.csv:
  note_id,entity_type
  10000032-DS-21,NAME
"""

import datetime
import random
import re

from clinical_t5.synth import csvio
from clinical_t5.synth import phi
from clinical_t5.synth import text as text_lib

NOTE_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                "storetime", "text")
ANNOTATION_COLUMNS = ("note_id", "entity_type")
UNDERSCORE_RUN = re.compile(r"____*")

# NOTE: MIMIC-IV subject ids start at 10,000,000, above every MIMIC-III id (< 100,000).
FIRST_SUBJECT_ID = 10000000


class Mimic4Writer:
  """Writes the two note tables (gzip) and their annotation files (plain CSV)."""

  def __init__(self, out_dir: str):
    base = f"{out_dir}/mimic-iv-note"
    header = ",".join(NOTE_COLUMNS) + "\n"
    ann_header = ",".join(ANNOTATION_COLUMNS) + "\n"
    self.notes = {
        "discharge": csvio.Table([csvio.ByteSink(f"{base}/discharge.csv.gz", gz=True)], header),
        "radiology": csvio.Table([csvio.ByteSink(f"{base}/radiology.csv.gz", gz=True)], header)}
    self.annotations = {
        "discharge": csvio.Table([csvio.ByteSink(f"{base}/discharge_annotation.csv")], ann_header),
        "radiology": csvio.Table([csvio.ByteSink(f"{base}/radiology_annotation.csv")], ann_header)}

  def close(self) -> None:
    for table in list(self.notes.values()) + list(self.annotations.values()):
      table.close()


def _fmt(t: datetime.datetime) -> str:
  return t.isoformat(" ")


def subject_notes(rng: random.Random, subject_id: int, force_long: bool = False) -> list[dict]:
  """Return the discharge and radiology notes of one MIMIC-IV subject.

  Each note is a dict with the 8 columns, `table` (discharge | radiology),
  `entities` (one entity type per `___` run) and `runs` (the run count).
  """
  year = rng.randint(2110, 2200)
  clock = datetime.datetime(year, rng.randint(1, 12), rng.randint(1, 28))
  notes = []
  ds_seq, rr_seq = rng.randint(1, 25), rng.randint(1, 30)
  for adm in range(rng.randint(1, 2)):
    hadm = str(20000000 + rng.randint(0, 9999999))
    for _ in range(rng.randint(0, 2)):
      clock += datetime.timedelta(minutes=rng.randint(30, 2000))
      filler = phi.Filler(rng, "mimic4", year, text_lib.VOCAB)
      text = text_lib.mimic4_radiology(filler, rng)
      note_type = "AR" if rng.random() < 0.05 else "RR"
      store = "" if rng.random() < 0.05 else _fmt(clock + datetime.timedelta(minutes=rng.randint(5, 90)))
      notes.append(_note(subject_id, "" if rng.random() < 0.2 else hadm, note_type, rr_seq,
                         _fmt(clock), store, text, filler.entities, "radiology"))
      rr_seq += 1
    clock += datetime.timedelta(days=rng.randint(2, 12))
    filler = phi.Filler(rng, "mimic4", year, text_lib.VOCAB)
    long = (force_long and adm == 0) or rng.random() < 0.03
    text = text_lib.mimic4_discharge(filler, rng, long=long)
    day = clock.replace(hour=0, minute=0)
    store = _fmt(day + datetime.timedelta(hours=rng.randint(20, 70), minutes=rng.randint(0, 59)))
    notes.append(_note(subject_id, hadm, "DS", ds_seq, _fmt(day), store, text, filler.entities,
                       "discharge"))
    ds_seq += 1
    if rng.random() < 0.08:
      filler = phi.Filler(rng, "mimic4", year, text_lib.VOCAB)
      text = "Addendum:\nPatient's ___ was notified of the pending {lab} result by Dr. {NAME}.\n"
      text = text.replace("___", "{NAME}").format_map(filler)
      notes.append(_note(subject_id, hadm, "AD", ds_seq, _fmt(day), store, text, filler.entities,
                         "discharge"))
      ds_seq += 1
  return notes


def _note(subject_id: int, hadm: str, note_type: str, seq: int, charttime: str, storetime: str,
          text: str, entities: list[str], table: str) -> dict:
  return {"note_id": f"{subject_id}-{note_type}-{seq}", "subject_id": subject_id, "hadm_id": hadm,
          "note_type": note_type, "note_seq": seq, "charttime": charttime, "storetime": storetime,
          "text": text, "entities": list(entities), "runs": len(entities), "table": table}


def format_note(note: dict) -> str:
  """Format one note row: numbers and times bare, the text always quoted."""
  return (f"{note['note_id']},{note['subject_id']},{note['hadm_id']},{note['note_type']},"
          f"{note['note_seq']},{note['charttime']},{note['storetime']},{csvio.quote(note['text'])}\n")


def annotation_lines(note: dict) -> list[str]:
  return [f"{note['note_id']},{entity}\n" for entity in note["entities"]]
