"""Document resources (State, Activity Profile, Agent Profile) and the
Activities and Agents resources: pure rules, no I/O.

- ``model``: resources, document keys and stored versions.
- ``params``: query parameters of each resource and method, validated.
- ``concurrency``: ETags and the If-Match / If-None-Match decision.
- ``content``: media types, JSON checks and the POST merge.
- ``writes``: what a PUT, POST or DELETE does to a stored document.
- ``events``: the canonical event payload of a document write.
- ``activities``: Activity Definitions in statements and their merge.
- ``agents``: the Person object for an Agent.
"""
