"""Verb and activity-type IRIs, as used by Open edX's own xAPI transformer
(openedx/event-routing-backends, ``processors/xapi/constants.py``), so
statements from this connector and from a live Open edX agree."""

# Verbs
REGISTERED = "http://adlnet.gov/expapi/verbs/registered"
UNREGISTERED = "http://id.tincanapi.com/verb/unregistered"
EVALUATED = "https://w3id.org/xapi/acrossx/verbs/evaluated"
EARNED = "http://id.tincanapi.com/verb/earned"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
PASSED = "http://adlnet.gov/expapi/verbs/passed"
FAILED = "http://adlnet.gov/expapi/verbs/failed"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
INITIALIZED = "http://adlnet.gov/expapi/verbs/initialized"
PLAYED = "https://w3id.org/xapi/video/verbs/played"
PAUSED = "https://w3id.org/xapi/video/verbs/paused"
SEEKED = "https://w3id.org/xapi/video/verbs/seeked"
TERMINATED = "http://adlnet.gov/expapi/verbs/terminated"

# Activity types
COURSE = "http://adlnet.gov/expapi/activities/course"
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
RESOURCE = "http://id.tincanapi.com/activitytype/resource"
VIDEO = "https://w3id.org/xapi/video/activity-type/video"
LINK = "http://adlnet.gov/expapi/activities/link"
# The certificate type of the tincanapi registry (event-routing-backends'
# XAPI_ACTIVITY_CERTIFICATE).
CERTIFICATE = "https://www.opigno.org/en/tincan_registry/activity_type/certificate"
# Page views are not transformed by event-routing-backends; this is the
# Activity Streams page type from the xAPI registry.
PAGE = "http://activitystrea.ms/schema/1.0/page"

# Extensions
MODE = "https://w3id.org/xapi/acrossx/extensions/type"
ATTEMPT = "http://id.tincanapi.com/extension/attempt-id"
GRADE_CLASSIFICATION = "http://www.tincanapi.co.uk/activitytypes/grade_classification"
VIDEO_LENGTH = "https://w3id.org/xapi/video/extensions/length"
VIDEO_TIME = "https://w3id.org/xapi/video/extensions/time"
VIDEO_TIME_FROM = "https://w3id.org/xapi/video/extensions/time-from"
VIDEO_TIME_TO = "https://w3id.org/xapi/video/extensions/time-to"

# Open edX response types -> xAPI interaction types (as event-routing-backends maps them)
INTERACTION_TYPES = {
    "choiceresponse": "choice",
    "multiplechoiceresponse": "choice",
    "numericalresponse": "numeric",
    "stringresponse": "fill-in",
    "customresponse": "other",
    "coderesponse": "performance",
    "externalresponse": "performance",
    "formularesponse": "fill-in",
    "schematicresponse": "sequencing",
    "imageresponse": "matching",
    "annotationresponse": "fill-in",
    "choicetextresponse": "choice",
    "optionresponse": "choice",
    "symbolicresponse": "fill-in",
    "truefalseresponse": "true-false",
}
