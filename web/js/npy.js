// web/js/npy.js — reads the daemon's .npy answers (NumPy format v1.0,
// little-endian, C order: '<f4' floats, '<i4' integers; '<f8' is accepted too).
//
// parseNpy(buffer) → {shape: [..], data: Float32Array | Int32Array | Float64Array}
// throws an Error naming what is wrong for anything else, so a page shows a
// message instead of drawing garbage.

const TYPES = { '<f4': Float32Array, '<i4': Int32Array, '<f8': Float64Array };

export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new Error('not a .npy file (bad magic)');
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  const Type = TYPES[descr];
  if (!Type) throw new Error(`.npy dtype ${descr} is not one the dashboard reads`);
  if (fortran) throw new Error('.npy in Fortran order is not supported');
  if (shapeText == null) throw new Error('.npy header has no shape');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (buffer.byteLength - offset < count * Type.BYTES_PER_ELEMENT) throw new Error('.npy body is shorter than its shape');
  /* copy out so the typed array is aligned whatever the header length */
  const data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  return { shape, data };
}
