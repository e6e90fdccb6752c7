// How an SMS body is split and billed, in words: shared by every editor that shows the count as
// one types (a message to a patient, a sequence's text steps).

/** "2 segments (GSM-7, 170 characters)", why it is UCS-2, and the estimated cost. */
export function smsShape(preview) {
  const parts = [`${preview.segments} segment${preview.segments === 1 ? '' : 's'} (${preview.encoding}, ${preview.characters} characters)`];
  if (preview.nonGsmCharacters.length > 0) parts.push(`UCS-2 because of ${preview.nonGsmCharacters.join(' ')}`);
  if (preview.estimatedCost) parts.push(`about ${preview.estimatedCost}`);
  return parts;
}
