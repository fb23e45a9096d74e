using System.Net;
using System.Net.Http.Json;
using System.Text;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.TUnit;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.Extensions.DependencyInjection;
using NotesApi.Data;
using NotesApi.Testing;

namespace NotesApi.TUnitTests;

/// <summary>
/// What the tests of the API share. The API's requests and the tests' own code run in each test's scope, although the
/// application builds every linq2db context itself: what it commits is visible to the test, and nothing is left after it,
/// checked from outside. TUnit runs the tests below in parallel.
/// </summary>
public abstract class NotesTest : DatabaseTest
{
    /// <summary>A prefix of this test's titles and tags: tests run in parallel, and none sees another's rows.</summary>
    readonly string _tag = $"t{Guid.NewGuid():N}"[..12];

    HttpClient? _client;

    protected HttpClient Api => _client ??= NotesApp.Factory.CreateClient(Scope);

    [After(Test)]
    public void DisposeClient() => _client?.Dispose();

    protected string Name(string suffix) => $"{_tag}-{suffix}";

    protected async Task<Note> CreateAsync(string title, params string[] tags)
    {
        var response = await Api.PostAsJsonAsync("/api/notes", new { title, tags });
        await Assert.That(response.StatusCode).IsEqualTo(HttpStatusCode.Created).Because(await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Note>())!;
    }

    protected async Task EndScopeAndAssertNothingLeftAsync()
    {
        await Scope.DisposeAsync();
        await Assert.That(await NotesApp.CountOutsideAsync("notes", "title", _tag)).IsEqualTo(0);
        await Assert.That(await NotesApp.CountOutsideAsync("tags", "name", _tag)).IsEqualTo(0);
    }
}

/// <summary>Notes posted, read and deleted through the API and the application's own code.</summary>
public sealed class NoteTests : NotesTest
{
    [Test]
    public async Task A_note_posted_is_found_by_id_and_by_tag_and_gone_after_the_test()
    {
        var created = await CreateAsync(Name("first"), Name("work"), NotesDatabase.DefaultTag);

        var fetched = await Api.GetFromJsonAsync<Note>($"/api/notes/{created.Id}");
        var byTag = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("work")}");

        await Assert.That((fetched!.Id, fetched.Title)).IsEqualTo((created.Id, created.Title));
        await Assert.That(created.Tags).IsEquivalentTo([NotesDatabase.DefaultTag, Name("work")]);
        await Assert.That(byTag!.Select(n => n.Title)).IsEquivalentTo([Name("first")]);
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_deleted_note_is_gone_for_the_test_and_a_second_delete_is_404()
    {
        var created = await CreateAsync(Name("doomed"));

        var first = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var second = await Api.DeleteAsync($"/api/notes/{created.Id}");
        var fetched = await Api.GetAsync($"/api/notes/{created.Id}");

        await Assert.That(first.StatusCode).IsEqualTo(HttpStatusCode.NoContent);
        await Assert.That(second.StatusCode).IsEqualTo(HttpStatusCode.NotFound);
        await Assert.That(fetched.StatusCode).IsEqualTo(HttpStatusCode.NotFound);
    }

    [Test]
    public async Task The_test_reads_with_the_applications_own_context_what_the_api_wrote()
    {
        var created = await CreateAsync(Name("via-api"), Name("shared"));

        // The application's context on linq2db's default configuration, built in test code: it joins the test's scope.
        await using var db = new NotesDb();
        var tag = await db.Tags.SingleAsync(t => t.Name == Name("shared"));

        await Assert.That(await db.NoteTags.CountAsync(nt => nt.NoteId == created.Id && nt.TagId == tag.Id)).IsEqualTo(1);
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task The_api_reads_what_the_test_wrote_through_the_applications_repository()
    {
        var repository = NotesApp.Factory.Services.GetRequiredService<NoteRepository>();
        var created = await repository.CreateAsync(Name("via-repository"), "body", [Name("direct")], CancellationToken.None);

        var listed = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("direct")}");

        await Assert.That(listed!.Select(n => n.Id)).IsEquivalentTo([created.Id]);
        await EndScopeAndAssertNothingLeftAsync();
    }
}

/// <summary>Tags: the one the application seeds at start-up, and one that concurrent requests create.</summary>
public sealed class TagTests : NotesTest
{
    [Test]
    public async Task The_tag_seeded_at_start_up_is_there_and_a_note_reuses_it()
    {
        await CreateAsync(Name("seeded"), NotesDatabase.DefaultTag);

        var tags = await Api.GetFromJsonAsync<TagCount[]>("/api/tags");

        await Assert.That(tags!.Where(t => t.Name == NotesDatabase.DefaultTag).Select(t => t.Notes)).IsEquivalentTo([1]);
    }

    [Test]
    public async Task Concurrent_requests_creating_the_same_new_tag_make_it_once()
    {
        var responses = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Api.PostAsJsonAsync("/api/notes", new { title = Name($"concurrent-{i}"), tags = new[] { Name("together") } })));

        await Assert.That(responses.Select(r => r.StatusCode)).IsEquivalentTo(Enumerable.Repeat(HttpStatusCode.Created, 5));
        var notes = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("together")}");
        await Assert.That(notes!.Length).IsEqualTo(5);
        await using var db = new NotesDb();
        await Assert.That(await db.Tags.CountAsync(t => t.Name == Name("together"))).IsEqualTo(1);
    }
}

/// <summary>Requests the API refuses.</summary>
public sealed class ValidationTests : NotesTest
{
    [Test]
    [Arguments("""{"title": ""}""")]
    [Arguments("""{"title": "   "}""")]
    [Arguments("""{"tags": ["a"]}""")]
    [Arguments("""{"title": "ok", "tags": [""]}""")]
    [Arguments("""{"title": """)]
    public async Task Bad_input_is_400_with_problem_details(string body)
    {
        var response = await Api.PostAsync("/api/notes", new StringContent(body, Encoding.UTF8, "application/json"));

        await Assert.That(response.StatusCode).IsEqualTo(HttpStatusCode.BadRequest).Because(await response.Content.ReadAsStringAsync());
        await Assert.That(response.Content.Headers.ContentType?.MediaType).IsEqualTo("application/problem+json");
    }

    [Test]
    public async Task A_missing_note_is_404()
    {
        var response = await Api.GetAsync("/api/notes/987654321");

        await Assert.That(response.StatusCode).IsEqualTo(HttpStatusCode.NotFound);
    }
}
