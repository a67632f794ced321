from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .models import Document, Role


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class DocumentTitleForm(forms.ModelForm):
    class Meta:
        model = Document
        fields = ("title",)
        widgets = {"title": forms.TextInput(attrs={"autofocus": True, "maxlength": 200})}

    def clean_title(self):
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("A title cannot be blank.")
        return title


class ShareForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[(Role.EDITOR, "Editor"), (Role.VIEWER, "Viewer")])

    def __init__(self, *args, document, **kwargs):
        super().__init__(*args, **kwargs)
        self.document = document

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise forms.ValidationError("No user with that name.")
        if user.pk == self.document.owner_id:
            raise forms.ValidationError("The owner already has full access.")
        self.cleaned_data["user"] = user
        return name
