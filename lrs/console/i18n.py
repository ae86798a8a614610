"""The console's two languages, Vietnamese and English (pure).

The language is the ``lrs_lang`` cookie when set (the switch in every page's
header sets it), else the first of the browser's Accept-Language ranges that
is Vietnamese or English, else English.  Every text a page shows is a key in
:data:`MESSAGES`; a test holds both languages to the same keys.
"""

from __future__ import annotations

from markupsafe import Markup

from lrs.ingest.formats import parse_accept_language

LANGUAGES = ("vi", "en")
DEFAULT = "en"
COOKIE = "lrs_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"en": "LRS console", "vi": "Bảng điều khiển LRS"},
    "signin": {"en": "Sign in", "vi": "Đăng nhập"},
    "signout": {"en": "Sign out", "vi": "Đăng xuất"},
    "signin_intro": {
        "en": "Sign in with an LRS credential: its key and secret.",
        "vi": "Đăng nhập bằng thông tin xác thực LRS: khóa và mật khẩu bí mật.",
    },
    "signin_with": {"en": "Sign in with {provider}", "vi": "Đăng nhập bằng {provider}"},
    "or_with_key": {"en": "Or with an LRS credential:", "vi": "Hoặc bằng thông tin xác thực LRS:"},
    "oidc_bad_state": {
        "en": "Sign-in refused: the provider's answer does not belong to this browser's sign-in; start again.",
        "vi": "Đăng nhập bị từ chối: phản hồi của nhà cung cấp không thuộc lần đăng nhập của trình duyệt này; hãy bắt đầu lại.",
    },
    "oidc_attempt_gone": {
        "en": "Sign-in refused: this sign-in attempt is unknown, expired or already used; start again.",
        "vi": "Đăng nhập bị từ chối: lần đăng nhập này không tồn tại, đã hết hạn hoặc đã được dùng; hãy bắt đầu lại.",
    },
    "oidc_code_refused": {
        "en": "Sign-in refused: the provider refused the authorization code.",
        "vi": "Đăng nhập bị từ chối: nhà cung cấp từ chối mã ủy quyền.",
    },
    "oidc_token_refused": {
        "en": "Sign-in refused: the provider's ID token did not pass the checks.",
        "vi": "Đăng nhập bị từ chối: mã định danh (ID token) của nhà cung cấp không qua được kiểm tra.",
    },
    "oidc_provider_error": {
        "en": "Sign-in refused by the provider.",
        "vi": "Nhà cung cấp đã từ chối đăng nhập.",
    },
    "oidc_unreachable": {
        "en": "The sign-in provider cannot be used now; try again later.",
        "vi": "Hiện không dùng được nhà cung cấp đăng nhập; vui lòng thử lại sau.",
    },
    "signed_in": {"en": "Signed in", "vi": "Đã đăng nhập"},
    "continue": {"en": "Continue to the console", "vi": "Tiếp tục vào bảng điều khiển"},
    "key": {"en": "Key", "vi": "Khóa"},
    "secret": {"en": "Secret", "vi": "Mật khẩu bí mật"},
    "bad_signin": {"en": "Unknown key or wrong secret.", "vi": "Khóa không tồn tại hoặc sai mật khẩu bí mật."},
    "too_many_signins": {
        "en": "Too many failed sign-ins for this key or from this address; wait a little and try again.",
        "vi": "Quá nhiều lần đăng nhập sai với khóa này hoặc từ địa chỉ này; vui lòng đợi một lát rồi thử lại.",
    },
    "bad_form": {
        "en": "The form expired or did not come from this console; try again.",
        "vi": "Biểu mẫu đã hết hạn hoặc không đến từ bảng điều khiển này; vui lòng thử lại.",
    },
    "signed_in_as": {"en": "Signed in as", "vi": "Đăng nhập với"},
    "tenant": {"en": "Tenant", "vi": "Phân vùng (tenant)"},
    "scopes": {"en": "Scopes", "vi": "Phạm vi quyền"},
    "officials": {"en": "Progress", "vi": "Tiến độ"},
    "operators": {"en": "Operations", "vi": "Vận hành"},
    "credentials": {"en": "Credentials", "vi": "Thông tin xác thực"},
    "statements": {"en": "Statements", "vi": "Bản ghi xAPI"},
    "forbidden": {
        "en": "This credential's scopes do not allow this page or action.",
        "vi": "Phạm vi quyền của thông tin xác thực này không cho phép trang hoặc thao tác này.",
    },
    "not_found": {"en": "Not found.", "vi": "Không tìm thấy."},
    "bad_request": {
        "en": "The request is not valid; check the address or the form.",
        "vi": "Yêu cầu không hợp lệ; vui lòng kiểm tra địa chỉ hoặc biểu mẫu.",
    },
    "unavailable": {
        "en": "This page cannot be shown right now; try again later.",
        "vi": "Hiện không thể hiển thị trang này; vui lòng thử lại sau.",
    },
    "detail_in_english": {"en": "details", "vi": "chi tiết bằng tiếng Anh"},
    "program": {"en": "Programme", "vi": "Chương trình"},
    "show": {"en": "Show", "vi": "Hiển thị"},
    "unit_tree": {"en": "Units", "vi": "Cơ quan, đơn vị"},
    "unit": {"en": "Unit", "vi": "Đơn vị"},
    "kind_ministry": {"en": "Ministry", "vi": "Bộ"},
    "kind_agency": {"en": "Agency", "vi": "Cơ quan"},
    "kind_unit": {"en": "Unit", "vi": "Đơn vị"},
    "headcount": {"en": "Headcount", "vi": "Tổng số"},
    "certified": {"en": "Certified", "vi": "Đạt chứng nhận"},
    "rate": {"en": "Rate", "vi": "Tỷ lệ"},
    "target": {"en": "Target", "vi": "Chỉ tiêu"},
    "target_met": {"en": "met", "vi": "đạt"},
    "target_not_met": {"en": "not met", "vi": "chưa đạt"},
    "needed": {"en": "needed", "vi": "cần"},
    "gap": {"en": "still to certify", "vi": "còn thiếu"},
    "due": {"en": "due", "vi": "hạn"},
    "no_units": {
        "en": "No units yet: load a roster with `lrs roster load FILE`.",
        "vi": "Chưa có đơn vị nào: nạp danh sách bằng `lrs roster load FILE`.",
    },
    "no_programs": {"en": "No programme is loaded.", "vi": "Chưa nạp chương trình nào."},
    "roster_as_of": {"en": "Roster as of", "vi": "Danh sách tính đến"},
    "position": {"en": "Log position", "vi": "Vị trí nhật ký"},
    "over_time": {"en": "Certification over time", "vi": "Tỷ lệ đạt chứng nhận theo thời gian"},
    "learners": {"en": "Learners", "vi": "Học viên"},
    "learner": {"en": "Learner", "vi": "Học viên"},
    "erased": {"en": "(erased)", "vi": "(đã xoá)"},
    "linked_identifiers": {"en": "Also known as", "vi": "Định danh liên kết"},
    "status": {"en": "Status", "vi": "Trạng thái"},
    "status_certified": {"en": "certified", "vi": "đã đạt"},
    "status_in_progress": {"en": "in progress", "vi": "đang học"},
    "status_not_started": {"en": "not started", "vi": "chưa bắt đầu"},
    "status_mastered": {"en": "mastered", "vi": "thành thạo"},
    "missing": {"en": "Missing", "vi": "Còn thiếu"},
    "earned_at": {"en": "Earned", "vi": "Ngày đạt"},
    "next_page": {"en": "Next page", "vi": "Trang sau"},
    "download_xlsx": {"en": "Report (XLSX)", "vi": "Báo cáo (XLSX)"},
    "download_csv_not_certified": {"en": "Not certified (CSV)", "vi": "Chưa đạt (CSV)"},
    "download_csv_summary": {"en": "Summary (CSV)", "vi": "Tổng hợp (CSV)"},
    # The report files (projections/competency/report_words.py): sheet names, the heading's labels and
    # every column's header.  English is the files' machine form: report_snapshots/ holds it byte for byte.
    "report_sheet_summary": {"en": "Summary", "vi": "Tổng hợp"},
    "report_sheet_not_certified": {"en": "Not certified", "vi": "Chưa đạt chứng nhận"},
    "report_heading_programme": {"en": "programme", "vi": "Chương trình"},
    "report_heading_programme_version": {"en": "programme version", "vi": "Phiên bản chương trình"},
    "report_heading_unit": {"en": "unit", "vi": "Đơn vị"},
    "report_heading_rows_by": {"en": "rows by", "vi": "Mỗi dòng là một"},
    "report_heading_log_position": {"en": "log position", "vi": "Vị trí nhật ký"},
    "report_heading_roster_as_of": {"en": "roster as of", "vi": "Danh sách tính đến"},
    "report_by_agency": {"en": "agency", "vi": "cơ quan"},
    "report_by_unit": {"en": "unit", "vi": "đơn vị"},
    "report_column_unit": {"en": "unit", "vi": "Mã đơn vị"},
    "report_column_name": {"en": "name", "vi": "Tên đơn vị"},
    "report_column_kind": {"en": "kind", "vi": "Mã loại đơn vị"},
    "report_column_kind_text": {"en": "kind_text", "vi": "Loại đơn vị"},
    "report_column_parent": {"en": "parent", "vi": "Mã đơn vị cấp trên"},
    "report_column_with_descendants": {"en": "with_descendants", "vi": "Mã gồm đơn vị trực thuộc"},
    "report_column_with_descendants_text": {"en": "with_descendants_text", "vi": "Gồm đơn vị trực thuộc"},
    "report_column_headcount": {"en": "headcount", "vi": "Tổng số"},
    "report_column_certified": {"en": "certified", "vi": "Đạt chứng nhận"},
    "report_column_rate": {"en": "rate", "vi": "Tỷ lệ"},
    "report_column_target_rate": {"en": "target_rate", "vi": "Chỉ tiêu"},
    "report_column_target_due": {"en": "target_due", "vi": "Hạn chỉ tiêu"},
    "report_column_target_needed": {"en": "target_needed", "vi": "Số cần đạt"},
    "report_column_gap": {"en": "gap", "vi": "Còn thiếu"},
    "report_column_learner": {"en": "learner", "vi": "Học viên"},
    "report_column_unit_name": {"en": "unit_name", "vi": "Tên đơn vị"},
    "report_column_agency": {"en": "agency", "vi": "Mã cơ quan"},
    "report_column_status": {"en": "status", "vi": "Mã trạng thái"},
    "report_column_status_text": {"en": "status_text", "vi": "Trạng thái"},
    "report_column_missing": {"en": "missing", "vi": "Nội dung còn thiếu"},
    "report_column_learner_key": {"en": "learner_key", "vi": "Khóa học viên"},
    "yes": {"en": "yes", "vi": "có"},
    "no": {"en": "no", "vi": "không"},
    "needs": {"en": "needs", "vi": "cần"},
    "subunits": {"en": "Units below", "vi": "Đơn vị trực thuộc"},
    "frameworks": {"en": "Competency frameworks", "vi": "Khung năng lực"},
    "competency": {"en": "Competence", "vi": "Năng lực"},
    "level": {"en": "Level", "vi": "Mức"},
    "best_score": {"en": "Best score", "vi": "Điểm cao nhất"},
    "evidence": {"en": "Evidence", "vi": "Minh chứng"},
    "mastered_of": {"en": "mastered of", "vi": "thành thạo trên"},
    "certifications": {"en": "Certifications", "vi": "Chứng nhận"},
    "earned": {"en": "earned", "vi": "đã đạt"},
    "not_earned": {"en": "not earned", "vi": "chưa đạt"},
    "evidence_trail": {"en": "Evidence trail", "vi": "Chuỗi minh chứng"},
    "no_evidence": {"en": "No competency evidence for this learner.", "vi": "Chưa có minh chứng năng lực nào của học viên này."},
    "timestamp": {"en": "Timestamp", "vi": "Thời điểm"},
    "verb": {"en": "Verb", "vi": "Động từ"},
    "activity": {"en": "Activity", "vi": "Hoạt động"},
    "score": {"en": "Score", "vi": "Điểm"},
    "passed": {"en": "Passed", "vi": "Đạt"},
    "completed": {"en": "Completed", "vi": "Hoàn thành"},
    "ingest": {"en": "Ingest", "vi": "Tiếp nhận"},
    "per_minute": {"en": "events in the last minute", "vi": "sự kiện trong phút vừa qua"},
    "per_5_minutes": {"en": "events in the last 5 minutes", "vi": "sự kiện trong 5 phút vừa qua"},
    "log_head": {"en": "Log head", "vi": "Đầu nhật ký"},
    "relay": {"en": "Relay to JetStream", "vi": "Chuyển tiếp sang JetStream"},
    "projection": {"en": "Competency projection", "vi": "Phép chiếu năng lực"},
    "lag": {"en": "lag (events)", "vi": "độ trễ (sự kiện)"},
    "not_running": {"en": "not running in this service", "vi": "không chạy trong dịch vụ này"},
    "parked": {"en": "Parked events", "vi": "Sự kiện bị tạm giữ"},
    "failing": {"en": "Events being retried", "vi": "Sự kiện đang thử lại"},
    "none": {"en": "None.", "vi": "Không có."},
    "attempts": {"en": "Attempts", "vi": "Số lần thử"},
    "error": {"en": "Error", "vi": "Lỗi"},
    "retry": {"en": "Retry", "vi": "Thử lại"},
    "retry_waiting": {
        "en": "A retry was asked of the projection's runner; this page refreshes until it is done.",
        "vi": "Đã gửi yêu cầu thử lại tới tiến trình chạy phép chiếu; trang sẽ tự làm mới cho đến khi xong.",
    },
    "retry_requests": {"en": "Retry requests", "vi": "Yêu cầu thử lại"},
    "retry_state": {"en": "State", "vi": "Trạng thái"},
    "retry_state_requested": {"en": "requested", "vi": "đã yêu cầu"},
    "retry_state_working": {"en": "in progress", "vi": "đang xử lý"},
    "retry_state_done": {"en": "done: applied and unparked", "vi": "xong: đã áp dụng và bỏ tạm giữ"},
    "retry_state_failed": {"en": "failed again (still parked)", "vi": "lại lỗi (vẫn tạm giữ)"},
    "requested_by": {"en": "Requested by", "vi": "Người yêu cầu"},
    "requested_at": {"en": "Requested at", "vi": "Thời điểm yêu cầu"},
    "refused": {"en": "Refused statements (this process)", "vi": "Bản ghi bị từ chối (tiến trình này)"},
    "audit": {"en": "Audit", "vi": "Kiểm toán"},
    "last_verify": {"en": "Last chain verification", "vi": "Lần kiểm tra chuỗi gần nhất"},
    "last_anchor": {"en": "Last anchor", "vi": "Lần neo gần nhất"},
    "verify_intact": {
        "en": "Hash chain intact through position {through}.",
        "vi": "Chuỗi băm nguyên vẹn đến vị trí {through}.",
    },
    "verify_broken": {
        "en": "Hash chain broken: first altered or missing position {position}.",
        "vi": "Chuỗi băm bị phá vỡ: vị trí đầu tiên bị sửa hoặc thiếu là {position}.",
    },
    "verify_anchors_ok": {"en": "Matches {checked} signed anchors.", "vi": "Khớp với {checked} mốc neo đã ký."},
    "verify_anchors_bad": {"en": "The anchor check failed.", "vi": "Kiểm tra mốc neo không đạt."},
    "verify_when": {"en": "Finished {at}; log head then {head}", "vi": "Hoàn tất lúc {at}; đầu nhật ký khi đó {head}"},
    "verify_by": {"en": "run by", "vi": "chạy bởi"},
    "verify_never": {
        "en": "No verification recorded: run `lrs audit verify`.",
        "vi": "Chưa có lần kiểm tra nào được ghi lại: hãy chạy `lrs audit verify`.",
    },
    "verify_stale": {
        "en": "No chain verification in the last {days} days.",
        "vi": "Không có lần kiểm tra chuỗi nào trong {days} ngày qua.",
    },
    "anchor_key": {"en": "Key id", "vi": "Mã khóa"},
    "anchor_signature_holds": {
        "en": "Its signature verifies with the public key.",
        "vi": "Chữ ký hợp lệ với khóa công khai.",
    },
    "anchor_signature_fails": {
        "en": "Its signature does NOT verify with the public keys: the anchors file was altered.",
        "vi": "Chữ ký KHÔNG hợp lệ với các khóa công khai: tệp mốc neo đã bị sửa.",
    },
    "anchor_matches_log": {"en": "The log still has the anchored hash.", "vi": "Nhật ký vẫn giữ đúng giá trị băm đã neo."},
    "anchor_differs_from_log": {
        "en": "The log's hash at this position differs from the anchor's (or the event is missing).",
        "vi": "Giá trị băm của nhật ký tại vị trí này khác với mốc neo (hoặc sự kiện bị thiếu).",
    },
    "anchor_none": {"en": "No anchor signed yet.", "vi": "Chưa có mốc neo nào được ký."},
    "name": {"en": "Name", "vi": "Tên"},
    "created": {"en": "Created", "vi": "Ngày tạo"},
    "revoked": {"en": "Revoked", "vi": "Đã thu hồi"},
    "active": {"en": "active", "vi": "đang dùng"},
    "revoke": {"en": "Revoke", "vi": "Thu hồi"},
    "create": {"en": "Create", "vi": "Tạo"},
    "new_credential": {"en": "New credential", "vi": "Thông tin xác thực mới"},
    "created_secret": {
        "en": "Credential created. Copy the secret now: it is shown only once.",
        "vi": "Đã tạo thông tin xác thực. Hãy sao chép mật khẩu bí mật ngay: nó chỉ hiển thị một lần.",
    },
    "revoked_ok": {"en": "Credential {key} revoked.", "vi": "Đã thu hồi thông tin xác thực {key}."},
    "filters": {"en": "Filters", "vi": "Bộ lọc"},
    "agent": {"en": "Agent (JSON)", "vi": "Tác nhân (JSON)"},
    "registration": {"en": "Registration", "vi": "Đăng ký"},
    "since": {"en": "Since", "vi": "Từ"},
    "until": {"en": "Until", "vi": "Đến"},
    "related_activities": {"en": "Related activities", "vi": "Hoạt động liên quan"},
    "related_agents": {"en": "Related agents", "vi": "Tác nhân liên quan"},
    "ascending": {"en": "Oldest first", "vi": "Cũ nhất trước"},
    "limit": {"en": "Limit", "vi": "Giới hạn"},
    "search": {"en": "Search", "vi": "Tìm"},
    "stored": {"en": "Stored", "vi": "Lưu lúc"},
    "actor": {"en": "Actor", "vi": "Tác nhân"},
    "object": {"en": "Object", "vi": "Đối tượng"},
    "statement": {"en": "Statement", "vi": "Bản ghi"},
    "no_statements": {"en": "No statements match.", "vi": "Không có bản ghi phù hợp."},
    "language": {"en": "Language", "vi": "Ngôn ngữ"},
    "not_current": {
        "en": "These figures are not current: the competency projection is {state}, at log position {position} of {head}.",
        "vi": "Số liệu chưa cập nhật: phép chiếu năng lực đang ở trạng thái {state}, vị trí {position} trên {head}.",
    },
    "projection_state": {"en": "State", "vi": "Trạng thái"},
    # The competency projection's states (projections/supervisor.py), on Operations and in the notice above.
    "projection_state_starting": {"en": "starting", "vi": "đang khởi động"},
    "projection_state_running": {"en": "running", "vi": "đang chạy"},
    "projection_state_current": {"en": "current", "vi": "đã cập nhật"},
    "projection_state_behind": {"en": "behind the log", "vi": "chậm hơn nhật ký"},
    "projection_state_rebuilding": {"en": "rebuilding", "vi": "đang dựng lại"},
    "projection_state_outdated": {"en": "outdated (needs a replay)", "vi": "lỗi thời (cần chạy lại)"},
    "projection_state_stopped": {"en": "stopped", "vi": "đã dừng"},
    # Why the projection is not current: a message per reason_code of projections/freshness_reasons.py
    # (lrs/console/projection_reasons.py), formatted with the reason's values.
    "projection_reason_starting": {"en": "starting", "vi": "đang khởi động"},
    "projection_reason_frameworks_changed": {
        "en": "the frameworks changed: rebuilding the projection from the log",
        "vi": "khung năng lực đã thay đổi: đang dựng lại phép chiếu từ nhật ký",
    },
    "projection_reason_other_replay": {
        "en": "another replay of the projection is running",
        "vi": "một lần chạy lại phép chiếu khác đang diễn ra",
    },
    "projection_reason_stopping": {"en": "the service is stopping", "vi": "dịch vụ đang dừng"},
    "projection_reason_behind": {
        "en": "the projection is {events:,} events behind the log, the oldest stored {age_s:,} s ago",
        "vi": "phép chiếu chậm {events:,} sự kiện so với nhật ký, sự kiện cũ nhất được lưu cách đây {age_s:,} giây",
    },
    "projection_reason_rebuilding_itself": {
        "en": "this service is rebuilding it from the log by itself: projection {projection!r} was built with "
              "rule version {built_rules} and frameworks {built_digest:.12}; these are {rules} and {digest:.12}",
        "vi": "dịch vụ này đang tự dựng lại phép chiếu từ nhật ký: phép chiếu được dựng với phiên bản quy tắc "
              "{built_rules} và khung năng lực {built_digest:.12}; hiện tại là {rules} và {digest:.12}",
    },
    "projection_reason_rebuilds_itself": {
        "en": "projection {projection!r} was built with rule version {built_rules} and frameworks {built_digest:.12}; "
              "these are {rules} and {digest:.12}: this service rebuilds it from the log by itself",
        "vi": "phép chiếu được dựng với phiên bản quy tắc {built_rules} và khung năng lực {built_digest:.12}; "
              "hiện tại là {rules} và {digest:.12}: dịch vụ này tự dựng lại phép chiếu từ nhật ký",
    },
    "projection_reason_no_auto_rebuild": {
        "en": "projection {projection!r} was built with rule version {built_rules} and frameworks {built_digest:.12}; "
              "these are {rules} and {digest:.12}: run `lrs replay {projection}` "
              "(LRS_COMPETENCY_AUTO_REBUILD=false: this service does not rebuild it by itself)",
        "vi": "phép chiếu được dựng với phiên bản quy tắc {built_rules} và khung năng lực {built_digest:.12}; "
              "hiện tại là {rules} và {digest:.12}: hãy chạy `lrs replay {projection}` "
              "(LRS_COMPETENCY_AUTO_REBUILD=false: dịch vụ này không tự dựng lại phép chiếu)",
    },
    "projection_reason_built_with_other": {
        "en": "it was built with rule version {built_rules} and frameworks {built_digest:.12}; "
              "these are {rules} and {digest:.12}: run `lrs replay competency`",
        "vi": "phép chiếu được dựng với phiên bản quy tắc {built_rules} và khung năng lực {built_digest:.12}; "
              "hiện tại là {rules} và {digest:.12}: hãy chạy `lrs replay competency`",
    },
    "projection_reason_rebuild_failed": {"en": "the rebuild failed: {error}", "vi": "dựng lại thất bại: {error}"},
    "projection_reason_log_chain_broken": {
        "en": "the log's hash chain is broken at position {position}: the projection is not rebuilt "
              "from an altered log; run `lrs audit verify`",
        "vi": "chuỗi băm của nhật ký bị đứt tại vị trí {position}: phép chiếu không được dựng lại "
              "từ một nhật ký đã bị sửa đổi; hãy chạy `lrs audit verify`",
    },
    "projection_reason_checkpoint_unreadable": {
        "en": "cannot read the checkpoint: {error}",
        "vi": "không đọc được điểm lưu vị trí (checkpoint): {error}",
    },
    "projection_reason_runner_failed": {
        "en": "the runner failed: {error}",
        "vi": "bộ chạy phép chiếu gặp lỗi: {error}",
    },
    "projection_reason_frameworks_unreadable": {
        "en": "the competency frameworks cannot be read: {error}",
        "vi": "không đọc được các tài liệu khung năng lực: {error}",
    },
    # Why a requirement falls short, by the API's reason_code (lrs/console/gap_reasons.py).
    "gap_no_evidence": {"en": "no evidence", "vi": "chưa có minh chứng"},
    "gap_reached_below_level": {
        "en": "reached {level_reached} below the level needed ({level_needed})",
        "vi": "đạt {level_reached}, dưới mức cần ({level_needed})",
    },
    "gap_evidence_below_level": {
        "en": "evidence only below the level needed ({level_needed})",
        "vi": "chỉ có minh chứng dưới mức cần ({level_needed})",
    },
    "gap_score_below_mastery": {
        "en": "best score {score:.2f} < mastery score {mastery_score:.2f}",
        "vi": "điểm cao nhất {score:.2f} < ngưỡng đạt {mastery_score:.2f}",
    },
    "gap_failed": {"en": "failed", "vi": "không đạt"},
    "gap_failed_with_score": {"en": "failed with score {score:.2f}", "vi": "không đạt, điểm {score:.2f}"},
    "gap_passed_not_completed": {
        "en": "passed, not completed (moveOn {move_on})",
        "vi": "đã đạt, chưa hoàn thành (moveOn {move_on})",
    },
    "gap_completed_not_passed": {
        "en": "completed, not passed (moveOn {move_on})",
        "vi": "đã hoàn thành, chưa đạt (moveOn {move_on})",
    },
    "gap_not_completed": {"en": "not completed (moveOn {move_on})", "vi": "chưa hoàn thành (moveOn {move_on})"},
    "gap_scored_not_judged": {
        "en": "scored, not judged (no masteryScore)",
        "vi": "có điểm, chưa được đánh giá (không có masteryScore)",
    },
    "gap_not_yet_met": {"en": "not yet met", "vi": "chưa đáp ứng"},
}


def translator(language: str):
    """``t(key, **values)`` in ``language`` (the key itself when unknown, so a gap shows)."""
    def t(key: str, /, **values: object) -> str:
        text = MESSAGES.get(key, {}).get(language, key)
        if any(isinstance(v, Markup) for v in values.values()):  # e.g. a <time>: the other values are escaped
            return Markup(text).format(**values)
        return text.format(**values) if values else text

    return t


def projection_state_word(state: str, language: str) -> str:
    """A projection state in ``language``; a state this catalogue does not know
    (a later version's) as the projection names it."""
    return MESSAGES.get(f"projection_state_{state}", {}).get(language, state)


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for tag in parse_accept_language(accept_language):
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def local_text(texts: object, language: str) -> str:
    """The text of a language map in ``language`` (``vi``, ``vi-VN``...), else English, else any."""
    if not isinstance(texts, dict) or not texts:
        return str(texts or "")
    for wanted in (language, "en"):
        for tag, text in texts.items():
            if tag.split("-")[0].lower() == wanted:
                return text
    return next(iter(texts.values()))
