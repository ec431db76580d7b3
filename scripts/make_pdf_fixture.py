#!/usr/bin/env python3
"""Writes crates/rem-cli/tests/fixtures/two-pages.pdf: a minimal two-page PDF (one
Helvetica text line per page) with a correct cross-reference table, for the ingest
tests. Run once; the output is committed."""
import os

PAGES = ["RocksDB stores sorted keys in SST files on page one.",
         "Compaction merges levels to bound read amplification on page two."]

objs = []
objs.append("<< /Type /Catalog /Pages 2 0 R >>")
kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(PAGES)))
objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(PAGES)} >>")
objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
for i, text in enumerate(PAGES):
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
    objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
    objs.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")

out = b"%PDF-1.4\n"
offsets = []
for n, body in enumerate(objs, start=1):
    offsets.append(len(out))
    out += f"{n} 0 obj\n{body}\nendobj\n".encode()
xref = len(out)
out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
for off in offsets:
    out += f"{off:010d} 00000 n \n".encode()
out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "crates", "rem-cli", "tests", "fixtures", "two-pages.pdf")
with open(path, "wb") as f:
    f.write(out)
print(path)
