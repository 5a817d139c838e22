"""Writes the sample corpus's DOCX and PPTX documents (committed; re-run after editing text here).

.venv-workloads/bin/python workloads/ingest/sample_corpus/build_office.py
"""

from __future__ import annotations

from pathlib import Path

import docx
import pptx

HERE = Path(__file__).resolve().parent

# (path, title, [(heading, [paragraphs])])
DOCUMENTS = [
    (
        "policies/procurement-policy.docx",
        "Procurement Policy",
        [
            (
                "Purpose",
                [
                    "This policy makes purchasing at Kestrel Valley Instruments fair, "
                    "documented and cost-effective."
                ],
            ),
            (
                "Quotes and approvals",
                [
                    "Purchases above €10,000 need three written quotes from different "
                    "suppliers before an order is placed.",
                    "Purchases above €50,000 need the approval of the Chief Financial Officer "
                    "(CFO) in addition to the budget owner.",
                    "Orders are placed only through the purchasing system; invoices without a "
                    "purchase order number are returned to the supplier.",
                ],
            ),
            (
                "Suppliers",
                [
                    "The preferred supplier list is reviewed every year in October by the "
                    "procurement team. New suppliers complete the supplier code of conduct "
                    "and a security questionnaire before their first order.",
                ],
            ),
        ],
    ),
    (
        "runbooks/release-process.docx",
        "Runbook: Merlin Release Process",
        [
            (
                "Release trains",
                [
                    "Merlin cloud releases leave on a release train every second Tuesday. "
                    "The code freeze starts 48 hours before the train leaves.",
                ],
            ),
            (
                "Change advisory board",
                [
                    "Changes to tern-db, networking or authentication are presented to the "
                    "change advisory board (CAB), which meets every Thursday at 14:00 CET.",
                ],
            ),
            (
                "Rolling back",
                [
                    "New features ship dark behind feature flags managed in Lantern, the "
                    "feature-flag service. The first response to a faulty release is to turn "
                    "its flag off in Lantern; a full rollback redeploys the previous train's "
                    "images with the deploy pipeline.",
                ],
            ),
        ],
    ),
    (
        "products/calibration-guide.docx",
        "Osprey DL-400 Calibration Guide",
        [
            (
                "Interval",
                [
                    "Each Osprey DL-400 must be calibrated every 12 months, or after any "
                    "repair of its input stage.",
                ],
            ),
            (
                "Conditions",
                [
                    "Calibrate at a reference temperature of 23 °C ± 2 °C after the logger "
                    "has rested in the lab for four hours. The achieved accuracy is ±0.1 % "
                    "of the measuring range on every analog channel.",
                ],
            ),
            (
                "Certificates",
                [
                    "The KVI calibration lab is accredited to ISO/IEC 17025. Every "
                    "calibration produces a certificate with the serial number, the "
                    "reference instruments used and the measured deviations.",
                ],
            ),
        ],
    ),
]

# (path, [(slide title, [bullets])])
PRESENTATIONS = [
    (
        "company/onboarding.pptx",
        [
            (
                "Welcome to Kestrel Valley Instruments",
                [
                    "Founded in 2011 in Aarhus, Denmark",
                    "420 employees in five countries",
                    "We build the Osprey loggers, Heron gateways and the Merlin cloud",
                ],
            ),
            (
                "Your first week",
                [
                    "Pick up your laptop at the IT service point, Desk 0, on your first morning",
                    "Complete the security awareness training within five days",
                    "Meet your onboarding buddy for lunch on day one",
                ],
            ),
            (
                "The buddy programme",
                [
                    "Every new colleague gets a buddy from another team for three months",
                    "Buddies meet at least every two weeks",
                ],
            ),
        ],
    ),
]


def write_documents() -> list[Path]:
    written = []
    for relative, title, sections in DOCUMENTS:
        document = docx.Document()
        document.add_heading(title, level=1)
        for heading, paragraphs in sections:
            document.add_heading(heading, level=2)
            for text in paragraphs:
                document.add_paragraph(text)
        path = HERE / relative
        document.save(path)
        written.append(path)
    for relative, slides in PRESENTATIONS:
        deck = pptx.Presentation()
        for title, bullets in slides:
            slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
            slide.shapes.title.text = title
            body = slide.placeholders[1].text_frame
            body.text = bullets[0]
            for bullet in bullets[1:]:
                body.add_paragraph().text = bullet
        path = HERE / relative
        deck.save(path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_documents():
        print(path.relative_to(HERE))
