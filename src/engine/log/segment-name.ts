/** Segment files are named by their base offset, padded to 20 digits so that name order is offset order. */
export const segmentNamePattern = /^(\d{20})\.log$/

export function segmentFileName(baseOffset: number, extension: 'log' | 'idx'): string {
  return `${String(baseOffset).padStart(20, '0')}.${extension}`
}
