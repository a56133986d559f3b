"""Templated clinical language for synthetic MIMIC notes (no real person's data).

Each note type has a few sections of template lines. A template names its slots
in `str.format` syntax: upper-case slots become PHI placeholders through
`phi.Filler`, lower-case slots draw from `VOCAB`, and `{{`/`}}` are literal
braces.

  rng = random.Random(0)
  filler = phi.Filler(rng, "mimic3", 2151, VOCAB)
  mimic3_note("ECG", filler, rng)
  -> "Sinus rhythm. Rate 72. ...\\nSince the previous tracing of [**2151-3-14**] ..."
"""

import random

from clinical_t5.synth import phi

VOCAB: dict[str, list[str]] = {
    "cond": ["hypertension", "type 2 diabetes mellitus", "coronary artery disease",
             "atrial fibrillation", "congestive heart failure", "COPD", "chronic kidney disease",
             "hyperlipidemia", "asthma", "hypothyroidism", "cirrhosis", "GERD",
             "peripheral vascular disease", "obstructive sleep apnea", "gout", "anemia"],
    "acute": ["pneumonia", "urinary tract infection", "sepsis", "GI bleed",
              "CHF exacerbation", "acute kidney injury", "NSTEMI", "cellulitis",
              "pancreatitis", "altered mental status", "syncope", "hip fracture"],
    "med": ["metoprolol", "lisinopril", "furosemide", "atorvastatin", "aspirin", "warfarin",
            "insulin glargine", "metformin", "levothyroxine", "pantoprazole",
            "amlodipine", "albuterol", "vancomycin", "ceftriaxone", "heparin", "prednisone"],
    "dose": ["5 mg", "10 mg", "20 mg", "25 mg", "40 mg", "81 mg", "100 mcg", "500 mg",
             "1 g", "12.5 mg"],
    "freq": ["daily", "twice a day", "at bedtime", "every 8 hours", "three times a day"],
    "lab": ["INR", "potassium", "creatinine", "hematocrit", "sodium", "glucose",
            "TSH", "liver function tests", "CBC"],
    "imaging": ["chest CT", "abdominal ultrasound", "MRI of the brain", "chest x-ray",
                "CT of the abdomen", "echocardiogram"],
    "procedure": ["colonoscopy", "cardiac catheterization", "EGD", "bronchoscopy",
                  "paracentesis", "pacemaker interrogation"],
    "symptom": ["fever over 101", "chest pain", "shortness of breath", "bleeding",
                "worsening swelling in your legs", "dizziness", "confusion"],
    "finding_neg": ["No pneumothorax", "No pleural effusion", "No focal consolidation",
                    "No acute intracranial hemorrhage", "No free air",
                    "No pulmonary edema"],
    "side": ["left", "right"],
    "lobe": ["right upper lobe", "right lower lobe", "left upper lobe", "left lower lobe",
             "right middle lobe", "lingula"],
    "exam": ["CHEST (PA & LAT)", "CHEST (PORTABLE AP)", "CT HEAD W/O CONTRAST",
             "CT ABDOMEN W/CONTRAST", "MR HEAD W & W/O CONTRAST", "RENAL U.S."],
    "service": ["MEDICINE", "SURGERY", "CARDIOTHORACIC", "NEUROLOGY", "ORTHOPAEDICS"],
    "sex": ["M", "F"],
    "rhythm": ["Sinus rhythm", "Sinus tachycardia", "Atrial fibrillation", "Sinus bradycardia"],
    "unit": ["MICU", "SICU", "CCU", "CSRU", "TSICU"],
    "vent": ["CPAP 5/5", "A/C 500x14 PEEP 5", "PSV 10/5", "SIMV 450x12"],
    # NOTE: a few phrases carry non-ASCII characters, as real notes do.
    "temp": ["37.2", "38.4", "36.8", "37.9"],
    "deg": ["C", "°C", "F"],
    "mood": ["calm", "anxious", "cooperative", "restless", "sleeping"],
}

_DS_HEADER = (
    "Admission Date:  {FULLDATE}              Discharge Date:   {FULLDATE}\n\n"
    "Date of Birth:  {DOB}             Sex:   {sex}\n\n"
    "Service: {service}\n\n"
    "Allergies:\nPatient recorded as having No Known Allergies to Drugs\n\n"
    "Attending:{NAME}\n")

_DS_COURSE = [
    "The patient was admitted to the {unit} with {acute}.",
    "She was started on {med} {dose} {freq} with improvement.",
    "He was treated with IV {med} and his symptoms resolved.",
    "Cardiology was consulted and recommended continuing {med}.",
    "Her {lab} was trended and remained stable.",
    "On hospital day {n} the patient was transferred to the floor.",
    "Echo on {DATE} showed an EF of 55%.",
    "His home {med} was held for low blood pressure and restarted on discharge.",
    "The patient was seen by Dr. {NAME} of the {HOSP} team.",
    "Blood cultures from {DATE} showed no growth.",
]

_LAB_LINES = [
    "{FULLDATE} 05:40AM BLOOD WBC-7.2 RBC-3.85* Hgb-11.2* Hct-33.5* MCV-87 MCH-29.1 Plt Ct-245",
    "{FULLDATE} 05:40AM BLOOD Glucose-112* UreaN-24* Creat-1.3* Na-138 K-4.1 Cl-101 HCO3-26",
    "{FULLDATE} 06:15AM BLOOD PT-14.2* PTT-32.1 INR(PT)-1.3*",
    "{FULLDATE} 04:50PM BLOOD CK(CPK)-85 cTropnT-<0.01",
    "{FULLDATE} 07:00AM BLOOD ALT-22 AST-31 AlkPhos-88 TotBili-0.6 Albumin-3.4*",
]
_EXAM = ("Physical Exam:\nVS: T {temp} BP 128/74 HR 84 RR 18 O2 sat 96% RA\n"
         "Gen: NAD, A&Ox3\nHEENT: MMM, OP clear\nCV: RRR, no m/r/g\n"
         "Lungs: CTAB, no wheezes\nAbd: soft, NT/ND, +BS\nExt: no c/c/e, 2+ DP pulses\n")

_NURSING = [
    "Neuro: A&Ox3, MAE, follows commands, pt {mood}.",
    "CV: HR 80s NSR, BP 110-130/60s, no ectopy noted.",
    "Resp: LS clear bilat, sats 95-98% on 2L NC, RR 14-20.",
    "GI/GU: abd soft, +BS, foley draining clear yellow urine ~60cc/hr.",
    "ID: Tmax {temp} {deg}, cont on {med}.",
    "Skin: intact, turned q2h.",
    "Social: family in to visit, updated by RN and Dr. {NAME}.",
    "Plan: cont to monitor, f/u AM labs, {lab} pending.",
    "VS:\tT {temp}\tHR 82\tBP 124/68\tRR 18 {{per flowsheet}}",
    "Pt transferred from {HOSP} on {DATE}.",
    "Daughter {NAME} can be reached at {PHONE}.",
    "Pt lives with wife in {LOC}, PCP Dr. {NAME}.",
    "Pain: c/o {n}/10 incisional pain, medicated with morphine 2mg IV with good effect.",
    "Heme: Hct stable, no s/sx of bleeding, {lab} to be rechecked with AM labs.",
    "Endo: FS BG 140-180, covered per RISS.",
    "Access: PIV x2 patent, R IJ CVL site c/d/i.",
    "Assessment: pt with {acute}, hemodynamically stable this shift.",
    "Action: {med} {dose} given as ordered, tolerated well.",
    "Response: BP improved, UO adequate.",
]

_PHYSICIAN = [
    "Chief Complaint: {acute}",
    "24 Hour Events: started {med} {dose}, {lab} rechecked.",
    "Allergies: No Known Drug Allergies",
    "Vital signs: Tmax {temp} {deg}, HR 88, BP 118/64, RR 18, SpO2 96%.",
    "Assessment and Plan: {age} y/o with h/o {cond} admitted with {acute}.",
    "# {acute}: cont {med}, monitor {lab}.",
    "# {cond}: home {med} {dose} {freq}.",
    "ICU Care: Nutrition: NPO. Glycemic control: insulin sliding scale.",
    "Code status: Full code. Disposition: ICU.",
    "I saw and examined the patient with Dr. {NAME} and agree with the note above.",
]

_RESPIRATORY = [
    "Respiratory Care: pt remains on {vent}, FiO2 40%.",
    "BS coarse bilat, suctioned for moderate thick secretions.",
    "ABG 7.38/42/98, will wean as tolerated.",
    "MDIs given as ordered, albuterol and atrovent.",
    "Plan: SBT in AM per team.",
]

_SHORT = {
    "Case Management ": ["Case management met with pt and family re: discharge planning.",
                         "Referral sent to {HOSP} rehab, awaiting bed offer.",
                         "Insurance: Medicare, auth # {ID}."],
    "Consult": ["Consult requested by Dr. {NAME} for evaluation of {acute}.",
                "Recommend {med} {dose} {freq} and repeat {lab} in AM."],
    "General": ["Family meeting held with pt's wife and Dr. {NAME}.",
                "Pt's son {NAME} is health care proxy, phone {PHONE}."],
    "Nutrition": ["Nutrition assessment: pt on tube feeds at goal 60 mL/hr.",
                  "Wt 72 kg, BMI 24, albumin 2.9.", "Recs: cont TF, check {lab} weekly."],
    "Pharmacy": ["Pharmacy consult for {med} dosing, goal trough 15-20.",
                 "Recommend {med} {dose} {freq}, recheck level in AM."],
    "Rehab Services": ["PT evaluation: pt ambulated 50 ft with rolling walker and assist x1.",
                       "Goals: independent transfers in 1 week."],
    "Social Work": ["SW met with pt and family; pt lives alone in {LOC}.",
                    "Provided support and resources, will follow."],
    "Nursing": ["Nursing progress note 0700-1900.", "Pt {mood}, pain 2/10 with tylenol.",
                "Family updated at bedside."],
}

_ECG = ["{rhythm}. Rate {n}0.", "Normal axis. Normal intervals.",
        "Nonspecific ST-T wave changes.", "Since the previous tracing of {DATE} no significant change.",
        "Left ventricular hypertrophy.", "Low QRS voltage in the limb leads."]

_ECHO = [
    "PATIENT/TEST INFORMATION:\nIndication: {acute}\nHeight: (in) 66\nWeight (lb): 180\n"
    "BP (mm Hg): 120/70\nHR (bpm): 72\nStatus: Inpatient\nDate/Time: {DATE} at 10:30\n"
    "Test: TTE (Complete)\nTape #: 2008W012-0:23\nTechnical Quality: Adequate\n",
    "Conclusions:\nThe left atrium is normal in size. Left ventricular wall thickness, "
    "cavity size and regional/global systolic function are normal (LVEF >55%).",
    "Compared with the prior study (images reviewed) of {DATE}, no change.",
]


def _lines(rng: random.Random, bank: list[str], low: int, high: int) -> list[str]:
  k = min(len(bank), rng.randint(low, high))
  return rng.sample(bank, k)


def radiology_header(filler: phi.Filler) -> str:
  """Return the header of a MIMIC-III radiology report, up to "FINAL REPORT"."""
  return ("{DATE} 10:15 AM\n {exam}                                Clip # {CLIP}\n"
            " Reason: eval for {acute}\n"
            " ______________________________________________________________________________\n"
            "                                 FINAL REPORT\n").format_map(filler)


def radiology_sections(filler: phi.Filler, rng: random.Random) -> tuple[str, str, str]:
  """Return the (header, findings, impression) texts of a MIMIC-III radiology report."""
  header = radiology_header(filler)
  findings = [rng.choice(VOCAB["finding_neg"]) + ".",
              "Heart size is normal. Mediastinal contours are unremarkable.",
              "The lungs are clear without focal consolidation. The hila are normal.",
              "The visualized osseous structures show no acute fracture.",
              "Comparison is made to the prior study of {DATE}.".format_map(filler)]
  if rng.random() < 0.5:
    findings.append(f"There is a {rng.randint(3, 15)} mm nodule in the {rng.choice(VOCAB['lobe'])}.")
  impression = rng.choice(VOCAB["finding_neg"]) + "."
  return header, " ".join(findings), impression


def _course(fmt: phi.Filler, rng: random.Random, long: bool) -> str:
  if long:
    # NOTE: 220 course sentences of about 60 characters make a note over 10 KB.
    return " ".join(rng.choice(_DS_COURSE).format_map(fmt) for _ in range(220))
  return " ".join(line.format_map(fmt) for line in _lines(rng, _DS_COURSE, 4, 10))


def mimic3_note(category: str, filler: phi.Filler, rng: random.Random, long: bool = False) -> str:
  """Return the text of one MIMIC-III note of `category` (a NOTEEVENTS CATEGORY value).

  `long` makes a discharge summary longer than 10 KB; other categories ignore it.
  """
  fmt = filler
  if category == "Discharge summary":
    parts = [_DS_HEADER.format_map(fmt), "Chief Complaint:\n{acute}\n".format_map(fmt),
             "History of Present Illness:\n{agetext} with {cond} and {cond} who presents "
             "from {HOSP} with {acute}.\n".format_map(fmt),
             "Past Medical History:\n- {cond}\n- {cond}\n- {cond}\n".format_map(fmt),
             _EXAM.format_map(fmt),
             "Pertinent Results:\n" + "\n".join(
                 line.format_map(fmt) for line in _lines(rng, _LAB_LINES, 2, 5)) + "\n",
             "Brief Hospital Course:\n" + _course(fmt, rng, long) + "\n",
             "Discharge Medications:\n1. {med} {dose} PO {freq}.\n2. {med} {dose} PO {freq}.\n"
             .format_map(fmt),
             "Discharge Disposition:\nHome\n\nDischarge Diagnosis:\n{acute}\n".format_map(fmt),
             "Discharge Instructions:\nPlease call Dr. {NAME} at {PHONE} if you develop "
             "{symptom}.\n".format_map(fmt),
             "Followup Instructions:\nProvider: {NAME}, MD Phone:{PHONE} Date/Time:{DATE} 10:30\n"
             "\n                             {NAME} MD {ID}\n\nCompleted by:{NAME} {DATE} @ 1419\n"
             "Signed electronically by: DR. {NAME} on: {DATE} 3:16 PM\n(End of Report)\n"
             .format_map(fmt)]
    return "\n".join(parts)
  if category == "Radiology":
    header, findings, impression = radiology_sections(filler, rng)
    indication = rng.choice(VOCAB["cond"])
    return f"{header} INDICATION: {indication}.\n\n FINDINGS: {findings}\n\n IMPRESSION: {impression}\n"
  if category == "Nursing/other":
    return "\n".join(line.format_map(fmt) for line in _lines(rng, _NURSING, 4, 10)) + "\n"
  if category == "Physician ":
    return "\n".join(line.format_map(fmt) for line in _lines(rng, _PHYSICIAN, 4, 9))
  if category == "Respiratory ":
    return "\n".join(line.format_map(fmt) for line in _lines(rng, _RESPIRATORY, 2, 5))
  if category == "ECG":
    return "\n".join(line.format_map(fmt) for line in _lines(rng, _ECG, 2, 4)) + "\n"
  if category == "Echo":
    return "\n".join(line.format_map(fmt) for line in _ECHO)
  return "\n".join(line.format_map(fmt) for line in _lines(rng, _SHORT[category], 1, 3))



_M4_DS_HEADER = (
    " \nName:  {NAME}                     Unit No:   {ID}\n \n"
    "Admission Date:  {DATE}              Discharge Date:   {DATE}\n \n"
    "Date of Birth:  {DOB}             Sex:   {sex}\n \n"
    "Service: {service}\n \nAllergies: \nNo Known Allergies / Adverse Drug Reactions\n \n"
    "Attending: {NAME}.\n \n")


def mimic4_discharge(filler: phi.Filler, rng: random.Random, long: bool = False) -> str:
  """Return a MIMIC-IV discharge note: the `___` header before "Sex:", then the body."""
  fmt = filler
  body = ["Chief Complaint:\n{acute}\n \n".format_map(fmt),
          "History of Present Illness:\n{age} y/o with {cond} transferred from {HOSP} with "
          "{acute}.\n \n".format_map(fmt),
          "Past Medical History:\n{cond}, {cond}\n \n".format_map(fmt)]
  body.append("Brief Hospital Course:\n" + _course(fmt, rng, long) + "\n \n")
  body.append("Discharge Instructions:\nDear Mr. {NAME},\nIt was a pleasure taking care of you "
              "at {HOSP}. Please call your doctor if you have {symptom}.\n \n".format_map(fmt))
  body.append("Followup Instructions:\n{NAME} on {DATE}\n".format_map(fmt))
  return _M4_DS_HEADER.format_map(fmt) + "".join(body)


def mimic4_radiology(filler: phi.Filler, rng: random.Random) -> str:
  """Return a MIMIC-IV radiology report with `___` placeholders."""
  fmt = filler
  text = ("EXAMINATION:  {exam}\n\nINDICATION:  ___ with {acute}\n\n"
          "TECHNIQUE:  Single frontal view of the chest.\n\nCOMPARISON:  {DATE}\n\n"
          "FINDINGS: \n\n{finding_neg}.  Heart size is normal.\n\n"
          "IMPRESSION: \n\n{finding_neg}.\n")
  text = text.replace("___ with", "{AGE90} with" if rng.random() < 0.05 else "{NAME} with")
  return text.format_map(fmt)
