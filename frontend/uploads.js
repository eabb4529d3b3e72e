// What to do when an upload has the same name (source path) as a document the user already has: the choice
// is sent as on_duplicate (replace | keep_both | reject, the API's field), remembered in the browser, and a
// new version that will replace documents is announced (the API's `replaces`) instead of happening silently.

export const DUPLICATE_CHOICES = ["replace", "keep_both", "reject"];
const KEY = "lectern.onDuplicate";

/** The remembered choice ("replace" when none or an unknown value is stored). */
export function loadDuplicateChoice(storage) {
  try {
    const v = storage()?.getItem(KEY);
    return DUPLICATE_CHOICES.includes(v) ? v : "replace";
  } catch {
    return "replace";
  }
}

export function saveDuplicateChoice(storage, value) {
  if (!DUPLICATE_CHOICES.includes(value)) return;
  try {
    storage()?.setItem(KEY, value);
  } catch {
    /* storage refused (private mode): the choice lasts for this page only */
  }
}

/** The POST /v1/documents body for a file. */
export function createBody(file, contentType, onDuplicate) {
  return {
    filename: file.name,
    content_type: contentType,
    size_bytes: file.size,
    on_duplicate: DUPLICATE_CHOICES.includes(onDuplicate) ? onDuplicate : "replace",
  };
}

/** The warning for a created upload that will replace documents once indexed, or null. `known` maps
 * document_id -> a document row (for the replaced versions' dates). */
export function replacesNotice(filename, replaces, known = new Map()) {
  if (!Array.isArray(replaces) || replaces.length === 0) return null;
  const dates = replaces
    .map((id) => known.get(id)?.created_at)
    .filter(Boolean)
    .map((iso) => iso.slice(0, 10));
  const which = replaces.length === 1 ? "the earlier version" : `${replaces.length} earlier versions`;
  const when = dates.length ? ` (added ${[...new Set(dates)].join(", ")})` : "";
  return (
    `“${filename}” replaces ${which}${when} once it is indexed; if it fails, the earlier one stays. ` +
    "Choose “keep both” above to keep them side by side."
  );
}
