// web/js/pages/analysis.js — #/analyses/{id}: a PCA result by its own id
// (as GET /v1/analyses/{id} names it) opens on its SAE's PCA page.
import { get } from '../api.js';

export async function mount(root, { params, signal }) {
  const a = await get(`/analyses/${Number(params.id)}`, signal);
  location.replace(`#/saes/${a.sae}/pca?analysis=${a.id}`);
}
