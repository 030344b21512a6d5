// The account page: one's own password; for administrators, the accounts.
import {api} from "./api.js";
import {el, toast} from "./ui.js";

const passwordForm = document.getElementById("password-form");
passwordForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = document.getElementById("password-error");
  error.hidden = true;
  const data = Object.fromEntries(new FormData(passwordForm).entries());
  try {
    await api("POST", "/api/account/password", data);
    passwordForm.reset();
    toast("Your password is changed. Your other sessions have ended.", "ok");
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
});

const users = document.getElementById("users");
async function loadUsers() {
  try {
    const list = await api("GET", "/api/users");
    users.replaceChildren(...list.map((u) => el("tr", {},
      el("td", {}, u.username), el("td", {}, u.display_name), el("td", {}, u.is_admin ? "Administrator" : "User"))));
  } catch (err) {
    toast(err.message, "error");
  }
}

const userForm = document.getElementById("user-form");
if (userForm) {
  userForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("user-error");
    error.hidden = true;
    const data = Object.fromEntries(new FormData(userForm).entries());
    data.is_admin = data.is_admin === "on";
    try {
      const user = await api("POST", "/api/users", data);
      userForm.reset();
      toast(`Account ${user.username} created.`, "ok");
      loadUsers();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  loadUsers();
}
