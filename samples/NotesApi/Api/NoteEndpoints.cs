using NotesApi.Data;

namespace NotesApi.Api;

public sealed record NewNote(string? Title, string? Body, string[]? Tags);

public static class NoteEndpoints
{
    public static IEndpointRouteBuilder MapNotes(this IEndpointRouteBuilder app)
    {
        var notes = app.MapGroup("/api/notes");

        notes.MapPost("/", async (NewNote note, NoteRepository repository, CancellationToken cancellationToken) =>
        {
            var title = note.Title?.Trim();
            var tags = (note.Tags ?? []).Select(t => t?.Trim() ?? string.Empty).ToArray();
            var errors = new Dictionary<string, string[]>();
            if (string.IsNullOrEmpty(title))
                errors["title"] = ["A note needs a title."];
            else if (title.Length > NoteRow.MaxTitleLength)
                errors["title"] = [$"A title has at most {NoteRow.MaxTitleLength} characters."];
            if (tags.Any(t => t.Length is 0 or > TagRow.MaxNameLength))
                errors["tags"] = [$"A tag has 1 to {TagRow.MaxNameLength} characters."];
            if (errors.Count > 0)
                return Results.ValidationProblem(errors);

            var created = await repository.CreateAsync(title!, note.Body ?? string.Empty, tags, cancellationToken);
            return Results.Created($"/api/notes/{created.Id}", created);
        });

        notes.MapGet("/", (string? tag, NoteRepository repository, CancellationToken cancellationToken) => repository.ListAsync(tag, cancellationToken));

        notes.MapGet("/{id:long}", async (long id, NoteRepository repository, CancellationToken cancellationToken) =>
            await repository.GetAsync(id, cancellationToken) is { } note ? Results.Ok(note) : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"No note {id}."));

        notes.MapDelete("/{id:long}", async (long id, NoteRepository repository, CancellationToken cancellationToken) =>
            await repository.DeleteAsync(id, cancellationToken) ? Results.NoContent() : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"No note {id}."));

        app.MapGet("/api/tags", (TagRepository repository, CancellationToken cancellationToken) => repository.ListAsync(cancellationToken));
        return app;
    }
}
