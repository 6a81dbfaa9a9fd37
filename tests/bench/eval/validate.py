#!/usr/bin/env python3
"""Validate the eval TSVs: stems exist as .html in the corpus, 1-6 stems, no dups, line counts."""
import os, sys, collections
SETS = [("pydocs_qa.tsv", "/usr/share/doc/python3.11-doc/html", 80),
        ("gitdocs_qa.tsv", "/usr/share/doc/git-doc", 60)]
BANNED = {"index", "genindex", "contents", "search", "py-modindex", "howto-index"}
here = os.path.dirname(os.path.abspath(__file__))
ok = True
for fname, root, want in SETS:
    stems = collections.defaultdict(list)
    for d, _, fs in os.walk(root):
        if "/_" in d:
            continue
        for f in fs:
            if f.endswith(".html"):
                stems[f[:-5].lower()].append(os.path.relpath(os.path.join(d, f), root))
    rows, errs, seen = [], [], set()
    with open(os.path.join(here, fname), encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                errs.append(f"{fname}:{n}: expected 2 tab-separated fields, got {len(parts)}")
                continue
            q, acc = parts
            if q.strip().lower() in seen:
                errs.append(f"{fname}:{n}: duplicate question")
            seen.add(q.strip().lower())
            acc = [s.strip() for s in acc.split(",")]
            if not 1 <= len(acc) <= 6:
                errs.append(f"{fname}:{n}: {len(acc)} stems")
            if len(set(acc)) != len(acc):
                errs.append(f"{fname}:{n}: repeated stem")
            for s in acc:
                if s.lower() not in stems:
                    errs.append(f"{fname}:{n}: stem {s!r} not found")
                if s.lower() in BANNED or s.lower().startswith(("genindex", "whatsnew")):
                    errs.append(f"{fname}:{n}: banned stem {s!r}")
            rows.append((q, acc))
    if len(rows) != want:
        errs.append(f"{fname}: {len(rows)} questions, expected {want}")
    use = collections.Counter(s for _, a in rows for s in a)
    first = collections.Counter(a[0] for _, a in rows)
    multi = sorted({s for _, a in rows for s in a if len(stems.get(s.lower(), [])) > 1})
    print(f"{fname}: {len(rows)} questions, {len(use)} distinct stems, "
          f"{sum(map(len, (a for _, a in rows)))/max(len(rows),1):.2f} stems/question")
    print(f"  most-used stems: {use.most_common(8)}")
    print(f"  first-listed stem used >2 times: {[s for s, c in first.items() if c > 2] or 'none'}")
    print(f"  stems matching several files: " + ", ".join(f"{s}={stems[s.lower()]}" for s in multi))
    for e in errs:
        print("  ERROR", e)
    ok &= not errs
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
