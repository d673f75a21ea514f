/* app/kinds_schema.h: a JSON Schema subset, to check a job's payload before
 * coil serve answers 202 (--kind-schema NAME=FILE).
 *
 * Debian packages no JSON Schema validator for C, so this is the subset
 * that payload checks need, and every keyword outside it is refused when
 * the schema is loaded rather than silently ignored:
 *
 *   type (a name or a list of them: object, array, string, number,
 *   integer, boolean, null), enum, const, properties, required,
 *   additionalProperties (true, false or a schema), items (a schema),
 *   minItems, maxItems, minLength, maxLength (in characters), minimum,
 *   maximum, exclusiveMinimum, exclusiveMaximum (numbers), pattern (POSIX
 *   extended regular expressions, not ECMA-262), description, title,
 *   $schema, $id, $comment, default, examples (ignored).
 *
 * A failure names the field: "$.rows[2].value: must be a number". Nothing
 * here suspends.
 */
#ifndef COIL_APP_KINDS_SCHEMA_H
#define COIL_APP_KINDS_SCHEMA_H

#include <stddef.h>

typedef struct app_schema app_schema;

/* Loads and checks the schema in `path`. Returns it, or NULL with the
 * reason in err. */
app_schema *app_schema_load(const char *path, char *err, size_t cap);

/* The same from JSON text (for tests). */
app_schema *app_schema_parse(const char *text, char *err, size_t cap);

/* Checks `doc` (a json_t *). Returns 0, or -EINVAL with the first failure,
 * naming its field, in msg. */
int app_schema_check(const app_schema *s, const void *doc, char *msg, size_t cap);

void app_schema_free(app_schema *s);

#endif
