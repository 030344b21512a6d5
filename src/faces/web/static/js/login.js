// The login and registration form.
import {api} from "./api.js";

const form = document.getElementById("auth-form");
const error = document.getElementById("auth-error");
const submit = document.getElementById("auth-submit");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = Object.fromEntries(new FormData(form).entries());
  if (!data.username || !data.password) {
    error.textContent = "Please enter your user name and password.";
    error.hidden = false;
    return;
  }
  submit.disabled = true;
  try {
    if (form.dataset.mode === "register") await api("POST", "/api/register", data);
    else await api("POST", "/api/login", {username: data.username, password: data.password});
    window.location.assign(form.dataset.next || "/");
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
    submit.disabled = false;
  }
});
