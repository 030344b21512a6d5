// The JSON API client of the page: every state change carries the session's CSRF token.

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function setCsrfToken(token) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && token) meta.setAttribute("content", token);
}

function messageOf(status, data) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && Array.isArray(data.detail) && data.detail.length) {
    return data.detail.map((d) => d.msg || String(d)).join("; ");
  }
  if (status === 401) return "Please log in again.";
  if (status === 0) return "The server cannot be reached.";
  return `The server answered with an error (${status}).`;
}

/** Call the API: api("POST", "/api/faces/3/name", {name: "Anna"}) -> parsed JSON (throws ApiError). */
export async function api(method, path, body, {signal} = {}) {
  const headers = {"Accept": "application/json"};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, {method, headers, body: payload, credentials: "same-origin", signal});
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, messageOf(0), null);
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) data = await response.json();
  if (data && data.csrf_token) setCsrfToken(data.csrf_token);
  if (response.status === 401 && !path.startsWith("/api/session")) {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, data), data);
  return data;
}

/** Upload a FormData with progress (fetch cannot report upload progress): onProgress(loaded, total). */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      const data = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, messageOf(xhr.status, data), data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, messageOf(0), null)));
    xhr.send(formData);
  });
}
