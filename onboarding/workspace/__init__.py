"""The agent workspace: queue overview, my work and the case page, inside the admin.

Reads live in `selectors` (a fixed number of queries per page, whatever the number
of tasks), what a person may do now in `actions` (computed from the state machines
for this user, re-checked by the services on POST), and the pages in `views`.
"""
