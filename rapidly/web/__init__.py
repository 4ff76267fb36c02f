"""Browser surfaces: the ES modules and styles that Rapidly serves itself (`static/`), and the demo's
sample company website.

`static/lib/` holds what any page of Rapidly's uses (DOM building without markup, the GraphQL client,
the save queue), `static/embed/` the embeddable form. Plain ES modules, no build step: the files
here are the files browsers run.
"""
