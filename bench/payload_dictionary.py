"""Train, check and evaluate the zstd dictionary of the event payloads (lrs/payload_codec.py).

The corpus is generated, with a fixed seed, from xAPI's own vocabulary: the
ADL, cmi5 and video verbs and activity types, agents by mbox, account and
openid, interactions of every type, results, contexts with registrations,
context activities, instructors and extensions, SubStatements and
StatementRefs, in English and Vietnamese; each statement is prepared and
given its ``stored`` by the LRS's own code, so the samples are the bytes
``events.payload`` holds.  It names none of the hosts, courses or learners
of the benchmarks (bench/ingest.py, bench/projection.py), which measure the
dictionary on statements it was not trained on.

    python bench/payload_dictionary.py train --dict-id 2     # writes schemas/zstd/events-2.dict
    python bench/payload_dictionary.py check                 # every shipped dictionary trains again byte for byte
    python bench/payload_dictionary.py evaluate              # ratio and µs per statement on the benchmarks' statements

A shipped dictionary is never changed: rows name it for as long as they
exist.  A better one gets the next id and becomes CURRENT_DICTIONARY.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrs.eventlog import StoredFormatter, finalize_with_text  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402

OUT_DIR = ROOT / "schemas" / "zstd"
# Training parameters of each shipped dictionary: (seed, samples, size, k, d).
# fastcover with k and d given and one thread is deterministic.
TRAINED = {1: (20261206, 30_000, 32 * 1024, 1024, 8)}

ADL = "http://adlnet.gov/expapi/verbs/"
ADL_VERBS = ["answered", "asked", "attempted", "attended", "commented", "completed", "exited", "experienced",
             "failed", "imported", "initialized", "interacted", "launched", "mastered", "passed", "preferred",
             "progressed", "registered", "responded", "resumed", "scored", "shared", "suspended", "terminated",
             "voided"]
W3ID_VERBS = ["https://w3id.org/xapi/adl/verbs/abandoned", "https://w3id.org/xapi/adl/verbs/waived",
              "https://w3id.org/xapi/adl/verbs/satisfied", "https://w3id.org/xapi/adl/verbs/logged-in",
              "https://w3id.org/xapi/adl/verbs/logged-out", "https://w3id.org/xapi/video/verbs/played",
              "https://w3id.org/xapi/video/verbs/paused", "https://w3id.org/xapi/video/verbs/seeked",
              "http://id.tincanapi.com/verb/viewed", "http://activitystrea.ms/schema/1.0/watch",
              "https://w3id.org/xapi/dod-isd/verbs/answered"]
VI_DISPLAY = {"completed": "đã hoàn thành", "passed": "đã đạt", "failed": "chưa đạt", "answered": "đã trả lời",
              "experienced": "đã xem", "attempted": "đã thử", "launched": "đã mở", "initialized": "đã bắt đầu",
              "terminated": "đã kết thúc", "progressed": "đã tiến bộ", "scored": "đã ghi điểm"}
ACTIVITY_TYPES = ["http://adlnet.gov/expapi/activities/" + t for t in (
    "course", "module", "lesson", "assessment", "interaction", "cmi.interaction", "question", "media",
    "meeting", "objective", "performance", "simulation", "link", "file", "profile")] + [
    "https://w3id.org/xapi/cmi5/activitytype/block", "https://w3id.org/xapi/cmi5/activitytype/course",
    "https://w3id.org/xapi/video/activity-type/video", "http://id.tincanapi.com/activitytype/school-assignment"]
INTERACTIONS = ["true-false", "choice", "fill-in", "long-fill-in", "matching", "performance", "sequencing",
                "likert", "numeric", "other"]
HOSTS = ["lms.example.edu", "moodle.example.org", "learn.example.com", "academy.example.net", "elearning.example.vn",
         "training.example.gov", "school.example.edu.vn", "portal.example.org"]
GIVEN = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Minh Châu", "Phạm Quốc Dũng", "Hoàng Thu Hà", "Alice Martin",
         "Bob Smith", "Carla Gómez", "David Lee", "Emma Brown", "Võ Thanh Tùng", "Đặng Mai Lan"]
WORDS = ["introduction", "basics", "safety", "data", "privacy", "security", "communication", "spreadsheets",
         "documents", "networks", "ethics", "quiz", "final-exam", "chapter", "unit", "week", "practice", "review",
         "project", "lab", "video", "reading", "discussion", "survey", "module", "section", "topic", "lesson"]
TITLES_EN = ["Introduction to", "Fundamentals of", "Working with", "Advanced", "Practical", "Assessment:",
             "Quiz:", "Video:", "Reading:", "Lab:"]
TITLES_VI = ["Giới thiệu về", "Cơ bản về", "Thực hành", "Nâng cao", "Bài kiểm tra:", "Video:", "Bài đọc:"]
SUBJECTS = ["digital literacy", "cyber security", "data protection", "office software", "online services",
            "information search", "communication skills", "problem solving", "programming", "mathematics"]
SUBJECTS_VI = ["kỹ năng số", "an toàn thông tin", "bảo vệ dữ liệu", "phần mềm văn phòng", "dịch vụ công trực tuyến",
               "tìm kiếm thông tin", "kỹ năng giao tiếp", "giải quyết vấn đề", "lập trình", "toán học"]
LANGS = ["en-US", "vi-VN", "en-GB", "fr-FR"]
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/moveon"


def _iri(rng: random.Random, host: str) -> str:
    parts = [rng.choice(WORDS) + ("-" + str(rng.randrange(1, 30)) if rng.random() < 0.6 else "")
             for _ in range(rng.randrange(1, 5))]
    return f"https://{host}/{rng.choice(['courses', 'activities', 'xapi/activities', 'content', 'c'])}/" + "/".join(parts)


def _agent(rng: random.Random, host: str) -> dict:
    n = rng.randrange(1_000_000)
    agent: dict = {"objectType": "Agent"} if rng.random() < 0.7 else {}
    if rng.random() < 0.6:
        agent["name"] = rng.choice(GIVEN) + (f" {n % 100}" if rng.random() < 0.3 else "")
    form = rng.random()
    if form < 0.5:
        agent["mbox"] = f"mailto:{rng.choice(['user', 'learner', 'student', 'sv', 'hv', 'staff'])}{n}@{host}"
    elif form < 0.85:
        agent["account"] = {"homePage": f"https://{host}", "name": rng.choice([str(n), f"u{n}", uuid.UUID(int=rng.getrandbits(128)).hex])}
    elif form < 0.95:
        agent["mbox_sha1sum"] = hashlib.sha1(str(n).encode()).hexdigest()
    else:
        agent["openid"] = f"https://{host}/openid/{n}"
    return agent


def _lang_map(rng: random.Random, en: str, vi: str) -> dict:
    chosen = rng.random()
    if chosen < 0.5:
        return {"en-US": en}
    if chosen < 0.8:
        return {"vi-VN": vi}
    return {"en-US": en, "vi-VN": vi}


def _definition(rng: random.Random, host: str) -> dict:
    subject = rng.randrange(len(SUBJECTS))
    definition: dict = {
        "name": _lang_map(rng, f"{rng.choice(TITLES_EN)} {SUBJECTS[subject]}", f"{rng.choice(TITLES_VI)} {SUBJECTS_VI[subject]}"),
        "type": rng.choice(ACTIVITY_TYPES),
    }
    if rng.random() < 0.4:
        definition["description"] = _lang_map(
            rng, f"This {rng.choice(WORDS)} covers {SUBJECTS[subject]} for {rng.choice(['beginners', 'staff', 'teachers', 'students'])}.",
            f"Nội dung này giới thiệu {SUBJECTS_VI[subject]} cho {rng.choice(['người mới', 'cán bộ', 'giáo viên', 'học viên'])}.")
    if rng.random() < 0.25:
        kind = rng.choice(INTERACTIONS)
        definition["type"] = "http://adlnet.gov/expapi/activities/cmi.interaction"
        definition["interactionType"] = kind
        if kind in ("choice", "sequencing"):
            choices = [f"choice-{i}" for i in range(rng.randrange(2, 6))]
            definition["choices"] = [{"id": c, "description": _lang_map(rng, f"Option {c[-1]}", f"Phương án {c[-1]}")} for c in choices]
            definition["correctResponsesPattern"] = ["[,]".join(rng.sample(choices, rng.randrange(1, len(choices))))]
        elif kind == "true-false":
            definition["correctResponsesPattern"] = [rng.choice(["true", "false"])]
        elif kind == "numeric":
            definition["correctResponsesPattern"] = [f"{rng.randrange(10)}[:]{rng.randrange(10, 100)}"]
        elif kind == "likert":
            definition["scale"] = [{"id": f"likert_{i}", "description": {"en-US": w}}
                                   for i, w in enumerate(["Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree"])]
        else:
            definition["correctResponsesPattern"] = [rng.choice(WORDS)]
    if rng.random() < 0.1:
        definition["moreInfo"] = _iri(rng, host)
    return definition


def _duration(rng: random.Random) -> str:
    seconds = rng.randrange(1, 7200)
    if rng.random() < 0.5:
        return f"PT{seconds}S" if rng.random() < 0.5 else f"PT{seconds / 7:.2f}S"
    return f"PT{seconds // 3600}H{seconds % 3600 // 60}M{seconds % 60}S"


def _result(rng: random.Random, verb: str) -> dict | None:
    if rng.random() < 0.35 and verb not in ("passed", "failed", "completed", "scored", "answered", "mastered"):
        return None
    result: dict = {}
    if verb in ("passed", "failed", "scored", "answered", "mastered") or rng.random() < 0.3:
        raw = rng.randrange(0, 101)
        score: dict = {"scaled": round(raw / 100, rng.choice([1, 2, 4]))}
        if rng.random() < 0.6:
            score.update({"raw": raw, "min": 0, "max": 100})
        result["score"] = score
    if rng.random() < 0.6:
        result["success"] = verb != "failed"
    if rng.random() < 0.6:
        result["completion"] = verb in ("completed", "passed", "mastered") or rng.random() < 0.5
    if rng.random() < 0.5:
        result["duration"] = _duration(rng)
    if verb == "answered" and rng.random() < 0.8:
        result["response"] = rng.choice(["true", "false", "choice-1", "choice-2[,]choice-3", str(rng.randrange(100)), rng.choice(WORDS)])
    if rng.random() < 0.15:
        result["extensions"] = {"https://w3id.org/xapi/video/extensions/time": round(rng.random() * 600, 3),
                                "https://w3id.org/xapi/video/extensions/progress": round(rng.random(), 3)}
    return result or None


def _context(rng: random.Random, host: str, course: str) -> dict | None:
    if rng.random() < 0.15:
        return None
    context: dict = {}
    if rng.random() < 0.7:
        context["registration"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    activities: dict = {}
    if rng.random() < 0.7:
        activities["parent"] = [{"id": course, "objectType": "Activity"} if rng.random() < 0.3 else {"id": course}]
    if rng.random() < 0.4:
        activities["grouping"] = [{"id": f"https://{host}/programs/{rng.choice(WORDS)}-{rng.randrange(20)}"}]
    if rng.random() < 0.3:
        activities["category"] = [{"id": CMI5_CATEGORY}] + ([{"id": MOVEON_CATEGORY}] if rng.random() < 0.3 else [])
    if activities:
        context["contextActivities"] = activities
    if rng.random() < 0.3:
        context["platform"] = rng.choice(["Moodle 4.3", "Open edX", "Canvas", "cmi5 player", "mobile app", "Chamilo"])
    if rng.random() < 0.4:
        context["language"] = rng.choice(LANGS)
    if rng.random() < 0.1:
        context["instructor"] = _agent(rng, host)
    if rng.random() < 0.1:
        context["revision"] = f"v{rng.randrange(1, 5)}.{rng.randrange(10)}"
    if rng.random() < 0.35:
        extensions = {}
        if rng.random() < 0.6:
            extensions["https://w3id.org/xapi/cmi5/context/extensions/sessionid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if rng.random() < 0.3:
            extensions["https://w3id.org/xapi/cmi5/context/extensions/masteryscore"] = round(rng.random(), 2)
        if rng.random() < 0.3:
            extensions["https://w3id.org/xapi/cmi5/context/extensions/launchmode"] = rng.choice(["Normal", "Browse", "Review"])
        if rng.random() < 0.3:
            extensions["https://w3id.org/xapi/video/extensions/session-id"] = uuid.UUID(int=rng.getrandbits(128)).hex
        if rng.random() < 0.2:
            extensions[f"https://{host}/xapi/extensions/{rng.choice(WORDS)}"] = rng.choice([rng.randrange(1000), rng.choice(WORDS), True])
        if extensions:
            context["extensions"] = extensions
    return context or None


def statement(rng: random.Random) -> dict:
    host = rng.choice(HOSTS)
    course = f"https://{host}/courses/{rng.choice(WORDS)}-{rng.randrange(200)}"
    if rng.random() < 0.8:
        name = rng.choice(ADL_VERBS)
        verb = {"id": ADL + name}
    else:
        verb = {"id": rng.choice(W3ID_VERBS)}
        name = verb["id"].rsplit("/", 1)[1]
    if rng.random() < 0.75:
        verb["display"] = {"en-US": name} if rng.random() < 0.6 else {"vi-VN": VI_DISPLAY.get(name, name), "en-US": name}
    body: dict = {"actor": _agent(rng, host), "verb": verb}
    kind = rng.random()
    if kind < 0.9:
        obj: dict = {"id": _iri(rng, host) if rng.random() < 0.7 else course}
        if rng.random() < 0.8:
            obj["objectType"] = "Activity"
        if rng.random() < 0.7:
            obj["definition"] = _definition(rng, host)
    elif kind < 0.95:
        obj = {"objectType": "StatementRef", "id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
    elif kind < 0.98:
        obj = {"objectType": "SubStatement", "actor": _agent(rng, host), "verb": {"id": ADL + rng.choice(ADL_VERBS)},
               "object": {"id": _iri(rng, host)}}
    else:
        obj = _agent(rng, host)
        obj["objectType"] = "Agent"
    body["object"] = obj
    result = _result(rng, name)
    if result:
        body["result"] = result
    context = _context(rng, host, course)
    if context:
        body["context"] = context
    if rng.random() < 0.9:
        moment = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(3 * 365 * 86400),
                                                                      microseconds=rng.choice([0, rng.randrange(1000) * 1000]))
        text = moment.isoformat(timespec=rng.choice(["seconds", "milliseconds"]))
        body["timestamp"] = text.replace("+00:00", "Z") if rng.random() < 0.8 else text.replace("+00:00", "+07:00")
    if rng.random() < 0.2:
        body["version"] = rng.choice(["1.0.0", "1.0.3"])
    return body


def corpus(seed: int, count: int) -> list[bytes]:
    """``count`` stored payloads, as the writer would keep them."""
    rng = random.Random(seed)
    stored_text = StoredFormatter()
    moment = datetime(2025, 3, 1, tzinfo=timezone.utc)
    keys = [f"key-{i}" for i in range(20)]
    samples: list[bytes] = []
    while len(samples) < count:
        authority = {"objectType": "Agent", "account": {"homePage": f"https://{rng.choice(HOSTS)}", "name": rng.choice(keys)}}
        batch = [statement(rng) for _ in range(min(50, count - len(samples)))]
        prepared = prepare_statements(batch, version=rng.choice(["1.0.3", "2.0.0"]), authority=authority,
                                      new_id=lambda: uuid.UUID(int=rng.getrandbits(128), version=4))
        for p in prepared:
            moment += timedelta(microseconds=rng.randrange(1, 5_000_000))
            samples.append(finalize_with_text(p.body, stored_text(moment)))
    return samples


def train(dictionary_id: int) -> bytes:
    seed, count, size, k, d = TRAINED[dictionary_id]
    trained = zstandard.train_dictionary(size, corpus(seed, count), dict_id=dictionary_id, k=k, d=d, threads=1, level=3)
    return trained.as_bytes()


def bench_statements(count: int) -> dict[str, list[bytes]]:
    """The benchmarks' statements as stored: the ingest bench's and the projection bench's cmi5 mix."""
    import ingest
    import projection

    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "bench"}}
    stored_text = StoredFormatter()
    moment = datetime(2026, 12, 6, tzinfo=timezone.utc)
    rng = random.Random(3)
    out: dict[str, list[bytes]] = {}
    ids = ingest._uuid_texts(2 * count)
    sources = {
        "ingest": [json.loads(ingest._statement(n, ids[2 * n], ids[2 * n + 1])) for n in range(count)],
        "cmi5": [json.loads(projection.statement(rng, 20_000, 0.33)) for _ in range(count)],
        "held-out corpus": [statement(random.Random(10**9 + n)) for n in range(count)],
    }
    for name, bodies in sources.items():
        payloads = []
        for p in prepare_statements(bodies, version="1.0.3", authority=authority, new_id=uuid.uuid4):
            moment += timedelta(microseconds=rng.randrange(1, 200))
            payloads.append(finalize_with_text(p.body, stored_text(moment)))
        out[name] = payloads
    return out


def evaluate(count: int) -> dict:
    from lrs.payload_codec import CURRENT_DICTIONARY, open_payload, store_payload

    report: dict = {"dictionary": CURRENT_DICTIONARY, "statements_each": count}
    plain = zstandard.ZstdCompressor(level=3, write_checksum=False)
    for name, payloads in bench_statements(count).items():
        stored = [store_payload(p) for p in payloads]
        assert [open_payload(s) for s in stored] == payloads
        timings = {}
        for label, fn, items in (("compress", store_payload, payloads), ("decompress", open_payload, stored)):
            runs = []
            for _ in range(5):
                start = time.process_time()
                for item in items:
                    fn(item)
                runs.append((time.process_time() - start) / len(items) * 1e6)
            timings[f"{label}_us_per_statement"] = round(statistics.median(runs), 2)
        json_bytes = sum(map(len, payloads))
        report[name] = {
            "json_bytes_per_statement": round(json_bytes / count, 1),
            "stored_bytes_per_statement": round(sum(map(len, stored)) / count, 1),
            "zstd_without_dictionary_bytes_per_statement": round(sum(len(plain.compress(p)) for p in payloads) / count, 1),
            **timings,
        }
    return report


def dictionary_commands(doc: str | None, trained: dict) -> tuple[argparse.ArgumentParser, Any]:
    """A dictionary script's parser with its ``train`` and ``check`` commands; add ``evaluate`` to the second."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    trainer = sub.add_parser("train", help="train dictionary --dict-id into schemas/zstd/")
    trainer.add_argument("--dict-id", type=int, required=True, choices=sorted(trained))
    trainer.add_argument("--force", action="store_true", help="overwrite a shipped dictionary (never for one rows use)")
    sub.add_parser("check", help="train every shipped dictionary again and compare")
    return parser, sub


def write_trained(out: Path, trained: Callable[[], bytes], force: bool) -> int:
    """Write a dictionary ``trained()`` gives to ``out``, unless one is shipped there."""
    if out.exists() and not force:
        print(f"{out.relative_to(ROOT)} exists and stored rows may name it; train a new id instead", file=sys.stderr)
        return 1
    data = trained()
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {out.relative_to(ROOT)}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


def check_trained(shipped: dict[int, Path], train: Callable[[int], bytes]) -> int:
    """Train each of ``shipped`` (id: its file) again and compare, byte for byte."""
    failed = 0
    for dictionary_id, path in shipped.items():
        same = train(dictionary_id) == path.read_bytes()
        failed += not same
        print(f"{path.relative_to(ROOT)}: {'trains again byte for byte' if same else 'DIFFERS from a new training'}")
    return 1 if failed else 0


def main() -> int:
    parser, sub = dictionary_commands(__doc__, TRAINED)
    evaluator = sub.add_parser("evaluate", help="ratio and CPU per statement on the benchmarks' statements")
    evaluator.add_argument("--count", type=int, default=20_000)
    evaluator.add_argument("--save", action="store_true", help="write bench/results/payload-dictionary-<UTC time>.json")
    args = parser.parse_args()
    if args.command == "train":
        return write_trained(OUT_DIR / f"events-{args.dict_id}.dict", lambda: train(args.dict_id), args.force)
    if args.command == "check":
        return check_trained({i: OUT_DIR / f"events-{i}.dict" for i in sorted(TRAINED)}, train)
    report = evaluate(args.count)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.save:
        out = ROOT / "bench" / "results" / f"payload-dictionary-disk-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({"benchmark": "payload-dictionary", "command": "python " + " ".join(sys.argv),
                                   "result": report}, indent=2, ensure_ascii=False) + "\n")
        print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
