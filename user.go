package chat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// User is a person or bot.
type User struct {
	// ID identifies the user; the Engine assigns it.
	ID ID
	// Name is an optional unique handle (a login, a Nexmo user name); "" for none.
	Name string
	// DisplayName is the name shown to others.
	DisplayName string
	// Email is the user's e-mail address, if known.
	Email string
	// AvatarURL points to the user's picture, if any.
	AvatarURL string
	// Attributes are opaque key/values that surfaces keep for the user.
	Attributes map[string]string
	// CreatedAt is when the user was created.
	CreatedAt time.Time
	// UpdatedAt is when the user was last changed.
	UpdatedAt time.Time
}

// NewUser is the input to CreateUser.
type NewUser struct {
	// Name is an optional unique handle.
	Name string
	// DisplayName is the name shown to others.
	DisplayName string
	// Email is the user's e-mail address.
	Email string
	// AvatarURL points to the user's picture.
	AvatarURL string
	// Attributes are opaque key/values.
	Attributes map[string]string
}

// Validate checks lengths and encodings.
func (n NewUser) Validate() error {
	for _, f := range []struct{ what, v string }{
		{"name", n.Name}, {"display name", n.DisplayName}, {"email", n.Email}, {"avatar URL", n.AvatarURL},
	} {
		if err := checkField(f.what, f.v); err != nil {
			return err
		}
	}
	return checkAttributes(n.Attributes)
}

// UserUpdate changes the fields that are not nil.
type UserUpdate struct {
	// Name, when set, replaces the unique name ("" removes it).
	Name *string
	// DisplayName, when set, replaces the display name.
	DisplayName *string
	// Email, when set, replaces the e-mail address.
	Email *string
	// AvatarURL, when set, replaces the picture.
	AvatarURL *string
	// Attributes, when not nil, replaces all attributes.
	Attributes map[string]string
}

// Validate checks lengths and encodings.
func (u UserUpdate) Validate() error {
	return NewUser{
		Name: deref(u.Name), DisplayName: deref(u.DisplayName), Email: deref(u.Email),
		AvatarURL: deref(u.AvatarURL), Attributes: u.Attributes,
	}.Validate()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func setIf[T any](dst *T, p *T) {
	if p != nil {
		*dst = *p
	}
}

// CreateUser creates a user. It returns ErrInvalid for bad input and ErrConflict if the name
// is taken.
func (e *Engine) CreateUser(ctx context.Context, n NewUser) (User, error) {
	if err := n.Validate(); err != nil {
		return User{}, err
	}
	now := e.now()
	u := newUser(n, e.ids.New(now), now)
	_, err := e.update(ctx, func(tx *wtx) error { return tx.createUser(u) })
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func newUser(n NewUser, id ID, now time.Time) User {
	return User{
		ID: id, Name: n.Name, DisplayName: n.DisplayName, Email: n.Email,
		AvatarURL: n.AvatarURL, Attributes: cloneMap(n.Attributes), CreatedAt: now, UpdatedAt: now,
	}
}

// createUser stores a new user, refusing a taken name.
func (tx *wtx) createUser(u User) error {
	if u.Name != "" {
		if _, err := tx.UserByName(u.Name); err == nil {
			return fmt.Errorf("chat: user name %q: %w", u.Name, ErrConflict)
		}
	}
	return tx.PutUser(u)
}

// UpsertUser makes the user named n.Name hold n's fields: it creates it, or updates it where
// it differs (Attributes replaced whole), and reports whether it created it. Two callers
// racing for one name get the same user. n.Name must not be empty. It returns ErrInvalid.
func (e *Engine) UpsertUser(ctx context.Context, n NewUser) (User, bool, error) {
	if n.Name == "" {
		return User{}, false, invalid("name", "empty: UpsertUser finds users by name")
	}
	if err := n.Validate(); err != nil {
		return User{}, false, err
	}
	for attempt := 0; ; attempt++ {
		now := e.now()
		fresh := newUser(n, e.ids.New(now), now)
		var u User
		created := false
		_, err := e.update(ctx, func(tx *wtx) error {
			created = false
			cur, err := tx.UserByName(n.Name)
			switch {
			case isNotFound(err):
				u, created = fresh, true
				return tx.createUser(u)
			case err != nil:
				return err
			}
			u = cur
			if cur.DisplayName == n.DisplayName && cur.Email == n.Email && cur.AvatarURL == n.AvatarURL && maps.Equal(cur.Attributes, n.Attributes) {
				return nil
			}
			u.DisplayName, u.Email, u.AvatarURL = n.DisplayName, n.Email, n.AvatarURL
			u.Attributes, u.UpdatedAt = cloneMap(n.Attributes), now
			return tx.PutUser(u)
		})
		if errors.Is(err, ErrConflict) && attempt == 0 {
			continue // created by another process meanwhile: update it
		}
		if err == nil && !created {
			e.users.drop(u.ID)
		}
		return u, created, err
	}
}

// User returns a user, or ErrNotFound.
func (e *Engine) User(ctx context.Context, id ID) (u User, err error) {
	err = e.view(ctx, func(tx ReadTx) error { u, err = tx.User(id); return err })
	return u, err
}

// UserByName returns the user with a unique name, or ErrNotFound.
func (e *Engine) UserByName(ctx context.Context, name string) (u User, err error) {
	err = e.view(ctx, func(tx ReadTx) error { u, err = tx.UserByName(name); return err })
	return u, err
}

// Users lists users in ID order, which is creation order to the millisecond (newest first
// with f.Desc).
func (e *Engine) Users(ctx context.Context, f ListFilter) (us []User, err error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	err = e.view(ctx, func(tx ReadTx) error { us, err = tx.Users(f); return err })
	return us, err
}

// UpdateUser changes a user. It returns ErrNotFound, ErrInvalid, or ErrConflict for a taken
// name.
func (e *Engine) UpdateUser(ctx context.Context, id ID, up UserUpdate) (User, error) {
	if err := up.Validate(); err != nil {
		return User{}, err
	}
	var u User
	_, err := e.update(ctx, func(tx *wtx) (err error) {
		if u, err = tx.User(id); err != nil {
			return err
		}
		if up.Name != nil && *up.Name != "" && *up.Name != u.Name {
			if _, err := tx.UserByName(*up.Name); err == nil {
				return fmt.Errorf("chat: user name %q: %w", *up.Name, ErrConflict)
			}
		}
		setIf(&u.Name, up.Name)
		setIf(&u.DisplayName, up.DisplayName)
		setIf(&u.Email, up.Email)
		setIf(&u.AvatarURL, up.AvatarURL)
		if up.Attributes != nil {
			u.Attributes = cloneMap(up.Attributes)
		}
		u.UpdatedAt = tx.e.now()
		return tx.PutUser(u)
	})
	e.users.drop(id)
	return u, err
}

// DeleteUser deletes a user. Its memberships that are not left end first: each gets a
// EventLeft in its room, in the same commit. It returns ErrNotFound.
func (e *Engine) DeleteUser(ctx context.Context, id ID) error {
	_, err := e.update(ctx, func(tx *wtx) error {
		if _, err := tx.User(id); err != nil {
			return err
		}
		ms, err := tx.Memberships(id)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.State == Left {
				continue
			}
			if _, err := tx.leave(m); err != nil { // as Leave does: typing ends, an emptied room's TTL starts
				return err
			}
		}
		return tx.DeleteUser(id)
	})
	e.users.drop(id)
	return err
}
