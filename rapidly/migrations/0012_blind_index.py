import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops

#: What the blind index replaces: the plaintext trigram index (0006) and the search over it (0008),
#: made again when this migration is reversed.
_TRIGRAMS = importlib.import_module("rapidly.migrations.0006_contact_search").Migration.operations[0].sql
_PLAIN_SEARCH = importlib.import_module("rapidly.migrations.0008_row_level_security")._SEARCH
_PLAIN_SIGNATURE = "rapidly_search_contacts(timestamptz, uuid, int, text[])"

#: Staff search over sealed values: a GIN index of each value's blind-index terms, searched by the
#: function below as the plaintext trigram index (0006) was by `rapidly_search_contacts` (0008).
#: `needles` is a JSON array of arrays of terms: a value matches a needle when its terms contain
#: all of the needle's (inlined as integer literals, each cast to int first).
#:
#: PostgreSQL cannot estimate how many values hold a set of hashes (it takes them as independent and
#: rare, and would read every match of a common one), so the function chooses itself, from the terms'
#: own frequencies in the column's statistics (ANALYZE keeps the most common elements of an array
#: column and their shares; a term not among them is rarer than all of them). A needle whose rarest
#: term is held by at least `common` of the values (a surname, a mail domain) is found by walking the
#: tenant's contacts from the most recent, looking up each one's values by its key, for at most `walk`
#: contacts (its page fills long before); any other through the GIN index, its few contacts sorted.
#: The walk costs the page's size over the needle's share, the index its matches (bench/search.py).
#: Without statistics to read (a database's owner that is not a superuser cannot: pg_stats hides tables
#: under row-level security from it) every needle walks first, for at most `walk` contacts, then goes
#: to the index: a rare search then costs the walk (about 20 ms at a million contacts).
_SEARCH = r"""
CREATE OR REPLACE FUNCTION rapidly_search_sealed(after_at timestamptz, after_id uuid, max_rows int, needles jsonb)
RETURNS TABLE (id uuid) LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $search$
DECLARE
    walk CONSTANT int := 2000;
    common CONSTANT float4 := 0.005;
    share float4;
    tenant uuid := public.rapidly_tenant();
    n1 int[];
    n2 int[];
    n3 int[];
    matching text;
    walked int := 0;
    found uuid[] := '{}';
    candidate record;
BEGIN
    SELECT string_agg(format('v.terms @> ARRAY[%s]::int[]', (
        SELECT string_agg((t #>> '{}')::int::text, ',') FROM jsonb_array_elements(n) AS t
    )), ' OR ') INTO matching
    FROM jsonb_array_elements(needles) AS n WHERE jsonb_array_length(n) > 0;
    IF matching IS NULL OR tenant IS NULL OR jsonb_array_length(needles) > 3 THEN
        RETURN;
    END IF;
    SELECT array_agg((t #>> '{}')::int) INTO n1 FROM jsonb_array_elements(needles -> 0) AS t;
    SELECT array_agg((t #>> '{}')::int) INTO n2 FROM jsonb_array_elements(needles -> 1) AS t;
    SELECT array_agg((t #>> '{}')::int) INTO n3 FROM jsonb_array_elements(needles -> 2) AS t;
    -- The share of values that hold the needle's rarest term, the most of any needle: at most that.
    SELECT max(rarest) INTO share FROM (
        SELECT min(coalesce(s.most_common_elem_freqs[array_position(s.most_common_elems::text::int[], t)], 0::real))
            AS rarest
        FROM (VALUES (1, n1), (2, n2), (3, n3)) AS needle (n, terms), unnest(needle.terms) AS t,
            (SELECT most_common_elems, most_common_elem_freqs FROM pg_catalog.pg_stats
             WHERE schemaname = 'public' AND tablename = 'field_value' AND attname = 'terms') AS s
        GROUP BY needle.n
    ) AS shares;
    -- No statistics at all (none gathered yet, or hidden: pg_stats shows a table under row-level
    -- security only to a role that bypasses it, which a managed database's owner may not): walk first.
    IF share IS NOT NULL AND share < common THEN
        walked := walk;  -- rare: straight to the index
    END IF;
    FOR candidate IN
        SELECT c.id FROM public.contact c
        WHERE c.tenant_id = tenant AND c.first_saved_at IS NOT NULL
            AND (after_at IS NULL OR (c.updated_at, c.id) < (after_at, after_id))
        ORDER BY c.updated_at DESC, c.id DESC LIMIT walk - walked
    LOOP
        walked := walked + 1;
        IF EXISTS (
            SELECT 1 FROM public.field_value v WHERE v.tenant_id = tenant AND v.contact_id = candidate.id
                AND (v.terms @> n1 OR v.terms @> n2 OR v.terms @> n3)
        ) THEN
            found := found || candidate.id;
            EXIT WHEN cardinality(found) >= max_rows;
        END IF;
    END LOOP;
    IF cardinality(found) >= max_rows OR walked < walk THEN
        RETURN QUERY SELECT unnest(found);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT c.id FROM public.contact c WHERE c.tenant_id = public.rapidly_tenant() '
        'AND c.first_saved_at IS NOT NULL %s AND c.id IN (SELECT v.contact_id FROM public.field_value v '
        'WHERE v.tenant_id = public.rapidly_tenant() AND (%s)) '
        'ORDER BY c.updated_at DESC, c.id DESC LIMIT $3',
        CASE WHEN after_at IS NULL THEN '' ELSE 'AND (c.updated_at, c.id) < ($1, $2)' END, matching
    ) USING after_at, after_id, max_rows;
END
$search$
"""
_SIGNATURE = "rapidly_search_sealed(timestamptz, uuid, int, jsonb)"
#: What sealing existing data (rapidly/keys/existing.py) reads, batch after batch: only rows saved
#: before encryption, so once all are sealed each is empty and a maintenance round costs nothing.
UNSEALED = {
    "field_value_unsealed": "INDEX {name} ON field_value (tenant_id, id) WHERE sealed IS NULL AND value IS NOT NULL",
    "chat_message_unsealed": "INDEX {name} ON chat_message (tenant_id, id) WHERE sealed_body IS NULL AND body IS NOT NULL",
    "media_unsealed": "INDEX {name} ON media (tenant_id, id) WHERE sealed IS NULL",
}


def _build(name: str, definition: str) -> list[str]:
    """Built CONCURRENTLY; a build that was cut off leaves an invalid index behind, dropped first."""
    return [
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE c.relname = '{name}' AND NOT i.indisvalid) THEN DROP INDEX {name}; END IF; END $$",
        "CREATE " + definition.format(name=name).replace("INDEX", "INDEX CONCURRENTLY IF NOT EXISTS", 1),
    ]


class Migration(migrations.Migration):
    """Search through blind indexes (rapidly/keys/blind.py) in place of the plaintext trigram index,
    which is dropped with the search over it (a value sealed has no text for it to index).

    The index is built CONCURRENTLY, outside a transaction, so saves go on meanwhile; a build that was
    cut off leaves an invalid index behind, which is dropped first. `rapidly.db.migrate` grants the
    app role EXECUTE on the function, as on every function of the schema."""

    dependencies = [("rapidly", "0011_sealed_values")]

    initial = False
    atomic = False

    operations = [
        ops.RunSQL(
            [
                *_build("field_value_terms", "INDEX {name} ON field_value USING gin (terms)"),
                *(sql for name, definition in UNSEALED.items() for sql in _build(name, definition)),
                _SEARCH,
                f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC",
                f"DROP FUNCTION IF EXISTS {_PLAIN_SIGNATURE}",
                "DROP INDEX CONCURRENTLY IF EXISTS field_value_search",
            ],
            reverse_sql=[
                *[sql for sql in _TRIGRAMS if not sql.startswith("CREATE EXTENSION")],
                _PLAIN_SEARCH,
                f"REVOKE ALL ON FUNCTION {_PLAIN_SIGNATURE} FROM PUBLIC",
                f"DROP FUNCTION IF EXISTS {_SIGNATURE}",
                *(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in ["field_value_terms", *UNSEALED]),
            ],
        ),
    ]
